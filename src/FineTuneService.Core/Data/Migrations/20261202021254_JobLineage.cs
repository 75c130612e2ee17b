using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class JobLineage : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "LineageDepth",
                table: "fine_tuning_jobs",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<string>(
                name: "ParentJobId",
                table: "fine_tuning_jobs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RootModel",
                table: "fine_tuning_jobs",
                type: "character varying(256)",
                maxLength: 256,
                nullable: true);

            // Existing jobs: the root is the base their model names (ft:{base}:…), the parent job the one that made
            // their model or checkpoint. Chains older than this migration deeper than one job are recorded as depth 1.
            migrationBuilder.Sql("""
                UPDATE fine_tuning_jobs SET "RootModel" = CASE WHEN "Model" LIKE 'ft:%' THEN split_part("Model", ':', 2) ELSE "Model" END;
                UPDATE fine_tuning_jobs AS child SET "ParentJobId" = parent."Id", "LineageDepth" = 1
                FROM fine_tuning_jobs AS parent WHERE child."Model" LIKE 'ft:%' AND parent."FineTunedModel" = child."Model";
                UPDATE fine_tuning_jobs AS child SET "ParentJobId" = c."JobId", "LineageDepth" = 1
                FROM fine_tuning_job_checkpoints AS c WHERE child."ParentJobId" IS NULL AND child."Model" LIKE 'ft:%' AND c."FineTunedModelCheckpoint" = child."Model";
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "LineageDepth",
                table: "fine_tuning_jobs");

            migrationBuilder.DropColumn(
                name: "ParentJobId",
                table: "fine_tuning_jobs");

            migrationBuilder.DropColumn(
                name: "RootModel",
                table: "fine_tuning_jobs");
        }
    }
}
