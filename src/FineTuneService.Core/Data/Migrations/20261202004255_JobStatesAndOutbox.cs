using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class JobStatesAndOutbox : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // "Paused" was Queued plus a flag, "awaiting screening" Uploaded plus a marker in the report: both become statuses.
            migrationBuilder.Sql("""UPDATE fine_tuning_jobs SET "Status" = 'Paused' WHERE "Status" = 'Queued' AND "Paused";""");
            migrationBuilder.Sql("""
                UPDATE files SET "Status" = 'AwaitingScreening'
                WHERE "Status" = 'Uploaded' AND "ValidationReport" -> 'screening' ->> 'status' = 'pending';
                """);
            migrationBuilder.DropColumn(
                name: "Paused",
                table: "fine_tuning_jobs");

            migrationBuilder.AddColumn<int>(
                name: "Attempts",
                table: "safety_evaluations",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<DateTime>(
                name: "HeartbeatAt",
                table: "safety_evaluations",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "WorkerId",
                table: "safety_evaluations",
                type: "character varying(256)",
                maxLength: 256,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "outbox",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn),
                    Dispatch = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    TargetId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    AttemptedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_outbox", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_outbox_CreatedAt",
                table: "outbox",
                column: "CreatedAt");

            // Rows already waiting get their enqueue again through the outbox, so one lost before the upgrade still happens.
            migrationBuilder.Sql("""
                INSERT INTO outbox ("Dispatch", "TargetId", "CreatedAt")
                SELECT 'FileValidation', "Id", now() FROM files WHERE "Status" = 'Uploaded' AND "DeletedAt" IS NULL
                UNION ALL SELECT 'FileScreening', "Id", now() FROM files WHERE "Status" = 'AwaitingScreening' AND "DeletedAt" IS NULL
                UNION ALL SELECT 'Training', "Id", now() FROM fine_tuning_jobs WHERE "Status" = 'Queued'
                UNION ALL SELECT 'SafetyEvaluation', "Id", now() FROM safety_evaluations WHERE "Status" = 'Queued';
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "outbox");

            migrationBuilder.DropColumn(
                name: "Attempts",
                table: "safety_evaluations");

            migrationBuilder.DropColumn(
                name: "HeartbeatAt",
                table: "safety_evaluations");

            migrationBuilder.DropColumn(
                name: "WorkerId",
                table: "safety_evaluations");

            migrationBuilder.AddColumn<bool>(
                name: "Paused",
                table: "fine_tuning_jobs",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.Sql("""UPDATE fine_tuning_jobs SET "Status" = 'Queued', "Paused" = true WHERE "Status" = 'Paused';""");
            migrationBuilder.Sql("""UPDATE files SET "Status" = 'Uploaded' WHERE "Status" = 'AwaitingScreening';""");
        }
    }
}
