using System.Globalization;
using System.Text;
using FineTuneService.Ml.Training;
using FineTuneService.Worker.Results;

namespace FineTuneService.Service.Tests.Worker;

public sealed class MetricsCsvTests
{
    private static string[][] Rows(byte[] file) =>
        [.. Encoding.UTF8.GetString(file).TrimEnd('\n').Split('\n').Select(line => line.Split(','))];

    private static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    [Fact]
    public void A_dpo_run_gets_reward_margin_reward_accuracy_and_valid_reward_accuracy_columns_between_the_step_and_stage_columns()
    {
        var steps = new[]
        {
            new StepMetrics(1, 0.69, 0.4, null, null) { RewardMargin = 0.012, RewardAccuracy = 0.5 },
            new StepMetrics(2, 0.61, 0.5, 0.65, 0.45) { RewardMargin = -0.25, RewardAccuracy = 0.25, ValidationRewardAccuracy = 0.625 },
        };
        var rows = Rows(MetricsCsv.Write(steps, [new StageScores("base", 0, 1.5, 2, 3, 40), new StageScores("after_training", 2, 4, 5, 6, 50)]));

        var header = rows[0];
        Assert.Equal(MetricsCsv.PreferenceHeader, string.Join(',', header));
        int Column(string name) => Array.IndexOf(header, name);
        Assert.Equal(["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"], header[..5]);
        Assert.True(Column("reward_margin") > Column("valid_mean_token_accuracy") && Column("valid_reward_accuracy") < Column("stage"));
        Assert.All(rows, r => Assert.Equal(header.Length, r.Length));

        Assert.Equal(0.012, Number(rows[1][Column("reward_margin")]));
        Assert.Equal(0.5, Number(rows[1][Column("reward_accuracy")]));
        Assert.Equal("", rows[1][Column("valid_reward_accuracy")]); // not validated at step 1
        Assert.Equal(-0.25, Number(rows[2][Column("reward_margin")]));
        Assert.Equal(0.25, Number(rows[2][Column("reward_accuracy")]));
        Assert.Equal(0.625, Number(rows[2][Column("valid_reward_accuracy")]));

        // Stage rows keep their scores under their own columns and leave the DPO columns empty.
        Assert.Equal("after_training", rows[4][Column("stage")]);
        Assert.Equal(4, Number(rows[4][Column("harmful_score")]));
        Assert.Equal(50, Number(rows[4][Column("fine_tune_accuracy")]));
        Assert.All(rows[3..], r => Assert.Equal(["", "", ""], r[Column("reward_margin")..(Column("valid_reward_accuracy") + 1)]));
    }

    [Fact]
    public void A_supervised_run_keeps_the_supervised_header_without_reward_columns()
    {
        var rows = Rows(MetricsCsv.Write([new StepMetrics(1, 2.5, 0.3, 2.6, 0.28)], [new StageScores("base", 0, 1, 2, 3, 4)]));

        Assert.Equal(MetricsCsv.Header, string.Join(',', rows[0]));
        Assert.DoesNotContain("reward_margin", rows[0]);
        Assert.Equal(["1", "2.5", "0.3", "2.6", "0.28", "", "", "", "", ""], rows[1]);
        Assert.Equal(["0", "", "", "", "", "base", "1", "2", "3", "4"], rows[2]);
    }
}
