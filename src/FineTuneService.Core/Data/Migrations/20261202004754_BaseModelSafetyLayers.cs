using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class BaseModelSafetyLayers : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "SafetyLayers",
                table: "base_models",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "SafetyLayersError",
                table: "base_models",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "SafetyLayersStatus",
                table: "base_models",
                type: "character varying(32)",
                maxLength: 32,
                nullable: false,
                // Existing rows: located again by a worker (the API queues every pending model at start).
                defaultValue: "Pending");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "SafetyLayers",
                table: "base_models");

            migrationBuilder.DropColumn(
                name: "SafetyLayersError",
                table: "base_models");

            migrationBuilder.DropColumn(
                name: "SafetyLayersStatus",
                table: "base_models");
        }
    }
}
