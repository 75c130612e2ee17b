using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <inheritdoc />
    public partial class RefusalRetentionGate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "MaxRefusalDrop",
                table: "safety_policies",
                type: "double precision",
                nullable: true);

            migrationBuilder.UpdateData(
                table: "safety_policies",
                keyColumn: "Id",
                keyValue: new Guid("5af3e7a0-0000-4000-8000-000000000001"),
                column: "MaxRefusalDrop",
                value: 25.0);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "MaxRefusalDrop",
                table: "safety_policies");
        }
    }
}
