using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <summary>
    /// A policy's and an evaluation's judge are stored as the judge's registered name ("classifier") rather than an
    /// enum member's name ("Classifier"); existing rows, the seeded global policy among them, are renamed, and back in Down.
    /// </summary>
    public partial class JudgeNamesStored : Migration
    {
        private static readonly string[] Tables = ["safety_policies", "safety_evaluations"];

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            foreach (var table in Tables)
                migrationBuilder.Sql($"""UPDATE {table} SET "Judge" = lower("Judge") WHERE "Judge" IS NOT NULL;""");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // The enum had one member per judge then: Classifier, External, Keyword.
            foreach (var table in Tables)
                migrationBuilder.Sql($"""UPDATE {table} SET "Judge" = initcap("Judge") WHERE "Judge" IS NOT NULL;""");
        }
    }
}
