using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class ArtifactsRetentionAndModelAccess : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // The existing checkpoints are resume states: keep their bundles under the new name, nullable because a
            // finished job's resume states are released.
            migrationBuilder.RenameColumn(
                name: "ArtifactSha256",
                table: "fine_tuning_job_checkpoints",
                newName: "ResumeStateSha256");

            migrationBuilder.AlterColumn<string>(
                name: "ResumeStateSha256",
                table: "fine_tuning_job_checkpoints",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true,
                oldClrType: typeof(string),
                oldType: "character varying(64)",
                oldMaxLength: 64);

            migrationBuilder.AddColumn<string>(
                name: "AdapterArtifactSha256",
                table: "fine_tuning_jobs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "ModelDeletedAt",
                table: "fine_tuning_jobs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<List<string>>(
                name: "ResultFiles",
                table: "fine_tuning_jobs",
                type: "text[]",
                nullable: false,
                defaultValueSql: "'{}'::text[]");

            migrationBuilder.AddColumn<string>(
                name: "AdapterArtifactSha256",
                table: "fine_tuning_job_checkpoints",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "WeightsArtifactSha256",
                table: "fine_tuning_job_checkpoints",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_fine_tuning_jobs_FineTunedModel",
                table: "fine_tuning_jobs",
                column: "FineTunedModel");

            migrationBuilder.CreateIndex(
                name: "IX_fine_tuning_job_checkpoints_FineTunedModelCheckpoint",
                table: "fine_tuning_job_checkpoints",
                column: "FineTunedModelCheckpoint");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_fine_tuning_jobs_FineTunedModel",
                table: "fine_tuning_jobs");

            migrationBuilder.DropIndex(
                name: "IX_fine_tuning_job_checkpoints_FineTunedModelCheckpoint",
                table: "fine_tuning_job_checkpoints");

            migrationBuilder.DropColumn(
                name: "AdapterArtifactSha256",
                table: "fine_tuning_jobs");

            migrationBuilder.DropColumn(
                name: "ModelDeletedAt",
                table: "fine_tuning_jobs");

            migrationBuilder.DropColumn(
                name: "ResultFiles",
                table: "fine_tuning_jobs");

            migrationBuilder.DropColumn(
                name: "AdapterArtifactSha256",
                table: "fine_tuning_job_checkpoints");

            migrationBuilder.DropColumn(
                name: "WeightsArtifactSha256",
                table: "fine_tuning_job_checkpoints");

            migrationBuilder.Sql("""DELETE FROM fine_tuning_job_checkpoints WHERE "ResumeStateSha256" IS NULL""");

            migrationBuilder.AlterColumn<string>(
                name: "ResumeStateSha256",
                table: "fine_tuning_job_checkpoints",
                type: "character varying(64)",
                maxLength: 64,
                nullable: false,
                oldClrType: typeof(string),
                oldType: "character varying(64)",
                oldMaxLength: 64,
                oldNullable: true);

            migrationBuilder.RenameColumn(
                name: "ResumeStateSha256",
                table: "fine_tuning_job_checkpoints",
                newName: "ArtifactSha256");
        }
    }
}
