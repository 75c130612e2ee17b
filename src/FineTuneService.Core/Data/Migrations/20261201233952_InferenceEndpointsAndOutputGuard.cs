using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class InferenceEndpointsAndOutputGuard : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "OutputGuard",
                table: "safety_policies",
                type: "character varying(32)",
                maxLength: 32,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "inference_endpoints",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Url = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: false),
                    AccessToken = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    Devices = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Load = table.Column<int>(type: "integer", nullable: false),
                    LoadedModels = table.Column<List<string>>(type: "text[]", nullable: false),
                    StartedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    HeartbeatAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_inference_endpoints", x => x.Id);
                });

            migrationBuilder.UpdateData(
                table: "safety_policies",
                keyColumn: "Id",
                keyValue: new Guid("5af3e7a0-0000-4000-8000-000000000001"),
                column: "OutputGuard",
                value: "Off");

            migrationBuilder.CreateIndex(
                name: "IX_inference_endpoints_HeartbeatAt",
                table: "inference_endpoints",
                column: "HeartbeatAt");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "inference_endpoints");

            migrationBuilder.DropColumn(
                name: "OutputGuard",
                table: "safety_policies");
        }
    }
}
