using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTuneService.Core.Data.Migrations
{
    /// <summary>
    /// The per-judge score columns of safety reports and cached base scores become one jsonb map from judge name to HS;
    /// existing rows get a map of the scores their columns held (null columns are left out), and Down puts them back.
    /// </summary>
    public partial class JudgeScoresByName : Migration
    {
        private static readonly string[] Tables = ["safety_reports", "base_model_safety_scores"];

        /// <summary>Column of each judge registered when the columns were dropped; later judges only ever had map entries.</summary>
        private static readonly (string Judge, string Column)[] JudgeColumns =
            [("classifier", "ClassifierHarmfulScore"), ("external", "ExternalHarmfulScore"), ("keyword", "KeywordHarmfulScore")];

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            foreach (var table in Tables)
            {
                migrationBuilder.AddColumn<string>(
                    name: "JudgeScores",
                    table: table,
                    type: "jsonb",
                    nullable: false,
                    defaultValue: "{}");

                var pairs = string.Join(", ", JudgeColumns.Select(c => $"'{c.Judge}', \"{c.Column}\""));
                migrationBuilder.Sql($"""UPDATE {table} SET "JudgeScores" = jsonb_strip_nulls(jsonb_build_object({pairs}));""");

                foreach (var (_, column) in JudgeColumns)
                    migrationBuilder.DropColumn(name: column, table: table);
            }
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            foreach (var table in Tables)
            {
                foreach (var (judge, column) in JudgeColumns)
                {
                    migrationBuilder.AddColumn<double>(
                        name: column,
                        table: table,
                        type: "double precision",
                        nullable: true);
                    migrationBuilder.Sql($"""UPDATE {table} SET "{column}" = ("JudgeScores" ->> '{judge}')::double precision;""");
                }

                migrationBuilder.DropColumn(name: "JudgeScores", table: table);
            }
        }
    }
}
