using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class SafetyGate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "base_model_safety_scores",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    BaseModelId = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    ArtifactSha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ConfigFingerprint = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Judge = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    HarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    KeywordHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    ClassifierHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    ExternalHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    OverRefusalRate = table.Column<double>(type: "double precision", nullable: true),
                    Report = table.Column<string>(type: "jsonb", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_base_model_safety_scores", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "safety_decisions",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    TenantId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    Decision = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Actor = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Reason = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true),
                    Details = table.Column<string>(type: "jsonb", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_safety_decisions", x => x.Id);
                    table.ForeignKey(
                        name: "FK_safety_decisions_fine_tuning_jobs_JobId",
                        column: x => x.JobId,
                        principalTable: "fine_tuning_jobs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "safety_evaluations",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TenantId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Model = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    PromptFileId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    Judge = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Options = table.Column<string>(type: "jsonb", nullable: true),
                    Status = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Report = table.Column<string>(type: "jsonb", nullable: true),
                    Error = table.Column<string>(type: "jsonb", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    StartedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    FinishedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_safety_evaluations", x => x.Id);
                    table.ForeignKey(
                        name: "FK_safety_evaluations_tenants_TenantId",
                        column: x => x.TenantId,
                        principalTable: "tenants",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "safety_policies",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    TenantId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    MaxHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    MaxHarmfulScoreIncrease = table.Column<double>(type: "double precision", nullable: true),
                    Action = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: true),
                    Judge = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: true),
                    UnsafeFileMaxRatio = table.Column<double>(type: "double precision", nullable: true),
                    UpdatedBy = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    UpdatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_safety_policies", x => x.Id);
                    table.ForeignKey(
                        name: "FK_safety_policies_tenants_TenantId",
                        column: x => x.TenantId,
                        principalTable: "tenants",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "safety_reports",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Stage = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Sequence = table.Column<int>(type: "integer", nullable: false),
                    ArtifactSha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    Judge = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    HarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    KeywordHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    ClassifierHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    ExternalHarmfulScore = table.Column<double>(type: "double precision", nullable: true),
                    OverRefusalRate = table.Column<double>(type: "double precision", nullable: true),
                    FineTuneAccuracy = table.Column<double>(type: "double precision", nullable: true),
                    Report = table.Column<string>(type: "jsonb", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_safety_reports", x => x.Id);
                    table.ForeignKey(
                        name: "FK_safety_reports_fine_tuning_jobs_JobId",
                        column: x => x.JobId,
                        principalTable: "fine_tuning_jobs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.InsertData(
                table: "safety_policies",
                columns: new[] { "Id", "Action", "Judge", "MaxHarmfulScore", "MaxHarmfulScoreIncrease", "TenantId", "UnsafeFileMaxRatio", "UpdatedAt", "UpdatedBy" },
                values: new object[] { new Guid("5af3e7a0-0000-4000-8000-000000000001"), "Fail", "Classifier", 20.0, 10.0, null, 0.5, new DateTime(2026, 11, 22, 0, 0, 0, 0, DateTimeKind.Utc), "seed" });

            migrationBuilder.CreateIndex(
                name: "IX_base_model_safety_scores_BaseModelId_ArtifactSha256_ConfigF~",
                table: "base_model_safety_scores",
                columns: new[] { "BaseModelId", "ArtifactSha256", "ConfigFingerprint" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_safety_decisions_CreatedAt",
                table: "safety_decisions",
                column: "CreatedAt");

            migrationBuilder.CreateIndex(
                name: "IX_safety_decisions_JobId",
                table: "safety_decisions",
                column: "JobId");

            migrationBuilder.CreateIndex(
                name: "IX_safety_evaluations_Status",
                table: "safety_evaluations",
                column: "Status");

            migrationBuilder.CreateIndex(
                name: "IX_safety_evaluations_TenantId_CreatedAt",
                table: "safety_evaluations",
                columns: new[] { "TenantId", "CreatedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_safety_policies_TenantId",
                table: "safety_policies",
                column: "TenantId",
                unique: true)
                .Annotation("Npgsql:NullsDistinct", false);

            migrationBuilder.CreateIndex(
                name: "IX_safety_reports_JobId_Sequence",
                table: "safety_reports",
                columns: new[] { "JobId", "Sequence" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "base_model_safety_scores");

            migrationBuilder.DropTable(
                name: "safety_decisions");

            migrationBuilder.DropTable(
                name: "safety_evaluations");

            migrationBuilder.DropTable(
                name: "safety_policies");

            migrationBuilder.DropTable(
                name: "safety_reports");
        }
    }
}
