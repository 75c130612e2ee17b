using FineTuneService.Core.Domain;
using FineTuneService.Ml.Training;
using Microsoft.Extensions.Logging;

namespace FineTuneService.Worker.Jobs;

/// <summary>
/// The trainer's view of the job, called on the training thread between steps: buffers metrics events every
/// <see cref="WorkerOptions.MetricsEverySteps"/> steps, reads the job's control flag after every step (so cancel and
/// pause take effect before the next one), and persists checkpoints before training goes on.
/// </summary>
internal sealed class JobObserver : ITrainingObserver, IDisposable
{
    private readonly JobLease _lease;
    private readonly CheckpointRecorder _checkpoints;
    private readonly WorkerOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _cancel;
    private readonly CancellationTokenSource _pause;

    /// <summary>Host shutdown (<paramref name="shutdown"/>) counts as a pause, so the run checkpoints before it is handed back.</summary>
    public JobObserver(JobLease lease, CheckpointRecorder checkpoints, WorkerOptions options, ILogger logger, CancellationToken shutdown)
    {
        _lease = lease;
        _checkpoints = checkpoints;
        _options = options;
        _logger = logger;
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(lease.Lost);
        _pause = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
    }

    /// <summary>Stops training without saving: the tenant cancelled, or another worker owns the job now.</summary>
    public CancellationToken Cancel => _cancel.Token;

    /// <summary>Stops training after a checkpoint: the tenant paused, or the host is shutting down.</summary>
    public CancellationToken Pause => _pause.Token;

    public void OnProgress(TrainingProgress progress)
    {
        if (progress.Step % _options.MetricsEverySteps == 0 || progress.Step == progress.TotalSteps)
            _lease.Report(progress);

        try
        {
            switch (_lease.ReadControl())
            {
                case JobControl.Cancel when !_cancel.IsCancellationRequested:
                    _lease.Post($"Cancellation requested; stopping after step {progress.Step}");
                    _cancel.Cancel();
                    break;
                case JobControl.Pause when !_pause.IsCancellationRequested:
                    _lease.Post($"Pause requested; saving a checkpoint after step {progress.Step}");
                    _pause.Cancel();
                    break;
            }
        }
        catch (Exception e)
        {
            // A failed read only delays the reaction by a step; it must not fail the training run.
            _logger.LogWarning(e, "Job {JobId}: could not read the control flag", _lease.JobId);
        }
    }

    public void OnEvaluation(EvaluationResult evaluation) =>
        _lease.Post(evaluation.RewardAccuracy is { } rewardAccuracy
            ? $"Step {evaluation.Step}: validation loss={evaluation.ValidationLoss:0.0000}, held-back reward accuracy={rewardAccuracy:0.00}"
            : $"Step {evaluation.Step}: validation loss={evaluation.ValidationLoss:0.0000}");

    public void OnCheckpoint(CheckpointWritten checkpoint) => _checkpoints.Record(checkpoint);

    public void Dispose()
    {
        _cancel.Dispose();
        _pause.Dispose();
    }
}
