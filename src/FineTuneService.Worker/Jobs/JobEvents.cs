using System.Text.Json.Nodes;
using FineTuneService.Core.Domain;
using FineTuneService.Ml.Training;

namespace FineTuneService.Worker.Jobs;

/// <summary>Builds the job events the worker writes (OpenAI "fine_tuning.job.event").</summary>
public static class JobEvents
{
    public static JobEvent Message(string jobId, string message, DateTime at, EventLevel level = EventLevel.Info) => new()
    {
        Id = Ids.Event(), JobId = jobId, Message = message, Level = level, CreatedAt = at,
    };

    /// <summary>A metrics event: step, train loss, tokens/s and ETA in its data, as OpenAI's metrics events.</summary>
    public static JobEvent Metrics(string jobId, TrainingProgress progress, DateTime at) => new()
    {
        Id = Ids.Event(),
        JobId = jobId,
        Type = "metrics",
        Message = $"Step {progress.Step}/{progress.TotalSteps}: training loss={progress.TrainLoss:0.0000}",
        CreatedAt = at,
        Data = new JsonObject
        {
            ["step"] = progress.Step,
            ["total_steps"] = progress.TotalSteps,
            ["train_loss"] = Math.Round(progress.TrainLoss, 6),
            ["epoch"] = progress.Epoch,
            ["learning_rate"] = progress.LearningRate,
            ["tokens_per_second"] = Math.Round(progress.TokensPerSecond, 1),
            ["trained_tokens"] = progress.TokensSeen,
            ["estimated_finish"] = progress.EstimatedFinish.ToUnixTimeSeconds(),
        },
    };
}
