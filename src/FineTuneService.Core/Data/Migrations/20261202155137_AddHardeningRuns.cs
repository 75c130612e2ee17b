using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class AddHardeningRuns : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "hardening_runs",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    BaseModel = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    Method = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Params = table.Column<string>(type: "jsonb", nullable: false),
                    Suffix = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    HardenedModel = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    Seed = table.Column<long>(type: "bigint", nullable: false),
                    Status = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Report = table.Column<string>(type: "jsonb", nullable: true),
                    Error = table.Column<string>(type: "jsonb", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    StartedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    FinishedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    WorkerId = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: true),
                    HeartbeatAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    Attempts = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_hardening_runs", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "hardening_run_events",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    RunId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Level = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Message = table.Column<string>(type: "text", nullable: false),
                    Data = table.Column<string>(type: "jsonb", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    Sequence = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_hardening_run_events", x => x.Id);
                    table.ForeignKey(
                        name: "FK_hardening_run_events_hardening_runs_RunId",
                        column: x => x.RunId,
                        principalTable: "hardening_runs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_hardening_run_events_RunId_Sequence",
                table: "hardening_run_events",
                columns: new[] { "RunId", "Sequence" });

            migrationBuilder.CreateIndex(
                name: "IX_hardening_runs_CreatedAt",
                table: "hardening_runs",
                column: "CreatedAt");

            migrationBuilder.CreateIndex(
                name: "IX_hardening_runs_HardenedModel",
                table: "hardening_runs",
                column: "HardenedModel",
                unique: true,
                filter: "\"Status\" <> 'Failed'");

            migrationBuilder.CreateIndex(
                name: "IX_hardening_runs_Status",
                table: "hardening_runs",
                column: "Status");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "hardening_run_events");

            migrationBuilder.DropTable(
                name: "hardening_runs");
        }
    }
}
