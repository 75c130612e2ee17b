using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class TypedJobContracts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // The typed records are required. Rows from before the API always wrote them get what the worker read
            // in their place: the job's hyperparameters as its method, and the evaluation defaults.
            migrationBuilder.Sql("""
                UPDATE fine_tuning_jobs SET "Method" = jsonb_build_object('type', 'supervised', 'supervised', jsonb_build_object('hyperparameters', "Hyperparameters"))
                WHERE "Method" IS NULL;
                UPDATE safety_evaluations SET "Options" = '{"include": ["harmful_score"], "max_prompts": null, "max_new_tokens": 32, "samples_per_part": 10, "prompt_count": null, "requested_by": null}'
                WHERE "Options" IS NULL;
                """);

            migrationBuilder.AlterColumn<string>(
                name: "Options",
                table: "safety_evaluations",
                type: "jsonb",
                nullable: false,
                oldClrType: typeof(string),
                oldType: "jsonb",
                oldNullable: true);

            migrationBuilder.AlterColumn<string>(
                name: "Method",
                table: "fine_tuning_jobs",
                type: "jsonb",
                nullable: false,
                oldClrType: typeof(string),
                oldType: "jsonb",
                oldNullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<string>(
                name: "Options",
                table: "safety_evaluations",
                type: "jsonb",
                nullable: true,
                oldClrType: typeof(string),
                oldType: "jsonb");

            migrationBuilder.AlterColumn<string>(
                name: "Method",
                table: "fine_tuning_jobs",
                type: "jsonb",
                nullable: true,
                oldClrType: typeof(string),
                oldType: "jsonb");
        }
    }
}
