using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using FineTuneService.Core.Telemetry;
using FineTuneService.Ml.Training;

namespace FineTuneService.Worker.Telemetry;

/// <summary>
/// The worker's instruments on the service meter: <c>fts.training.tokens_per_second</c> (per device, only while a
/// job trains there), <c>fts.training.tokens</c> (a counter; rate() of it is throughput over any window),
/// <c>fts.checkpoint.upload.duration</c> and <c>fts.evaluation.duration</c> (histograms, seconds).
/// </summary>
public sealed class WorkerMetrics
{
    private readonly ConcurrentDictionary<string, double> _tokensPerSecond = new();
    private readonly Counter<long> _tokens;
    private readonly Histogram<double> _checkpointUpload;
    private readonly Histogram<double> _evaluation;

    public WorkerMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(FineTuneMeters.Name);
        meter.CreateObservableGauge("fts.training.tokens_per_second",
            () => _tokensPerSecond.Select(d => new Measurement<double>(d.Value, Device(d.Key))), "{token}/s",
            "Training throughput of the job running on each device (non-padding tokens per second of step time).");
        _tokens = meter.CreateCounter<long>("fts.training.tokens", "{token}", "Non-padding tokens trained.");
        _checkpointUpload = meter.CreateHistogram<double>("fts.checkpoint.upload.duration", "s",
            "Time to store a checkpoint in PostgreSQL and record it.");
        _evaluation = meter.CreateHistogram<double>("fts.evaluation.duration", "s",
            "Time of one safety evaluation of a model (every judge, over-refusal, accuracy).");
    }

    /// <summary>
    /// Wraps a training run's observer on <paramref name="device"/>: throughput and tokens from its progress, the time
    /// its checkpoints take to persist. Dispose when the run ends, so an idle device reports no throughput.
    /// </summary>
    public MeteredTrainingObserver Observe(string device, ITrainingObserver inner) => new(this, device, inner);

    /// <summary>Times one safety evaluation; dispose the result when it is done.</summary>
    public EvaluationTiming TimeEvaluation() => new(this, Stopwatch.GetTimestamp());

    public readonly struct EvaluationTiming(WorkerMetrics metrics, long started) : IDisposable
    {
        public void Dispose() => metrics._evaluation.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    public sealed class MeteredTrainingObserver(WorkerMetrics metrics, string device, ITrainingObserver inner) : ITrainingObserver, IDisposable
    {
        private long _runTokens;

        public void OnProgress(TrainingProgress progress)
        {
            metrics._tokensPerSecond[device] = progress.TokensPerSecond;
            // Tokens of this run so far; TokensSeen would count the steps before a resume again.
            var runTokens = (long)Math.Round(progress.TokensPerSecond * progress.Elapsed.TotalSeconds);
            if (runTokens > _runTokens) metrics._tokens.Add(runTokens - _runTokens, Device(device));
            _runTokens = Math.Max(_runTokens, runTokens);
            inner.OnProgress(progress);
        }

        public void OnEvaluation(EvaluationResult evaluation) => inner.OnEvaluation(evaluation);

        public void OnCheckpoint(CheckpointWritten checkpoint)
        {
            var started = Stopwatch.GetTimestamp();
            inner.OnCheckpoint(checkpoint);
            metrics._checkpointUpload.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        public void OnStage(string stage) => inner.OnStage(stage);

        public void Dispose() => metrics._tokensPerSecond.TryRemove(device, out _);
    }

    private static KeyValuePair<string, object?> Device(string device) => new("device", device);
}
