using System.Collections.Concurrent;
using System.Formats.Tar;
using FineTuneService.Contracts.Jobs;
using FineTuneService.Core.Artifacts;
using FineTuneService.Core.Data;
using FineTuneService.Core.Domain;
using FineTuneService.Datasets;
using FineTuneService.Datasets.Jsonl;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;

namespace FineTuneService.Core.Jobs;

/// <summary>Where an estimate's duration comes from; on the wire as its snake_case name.</summary>
public enum EstimateBasis
{
    /// <summary>The training time per token and time per evaluation stage of jobs on the same root base model and device kind that finished on this pool.</summary>
    Measured,
    /// <summary>No such finished job yet: <see cref="JobEstimator.DefaultTokensPerSecond"/> and <see cref="JobEstimator.DefaultEvaluationStage"/>.</summary>
    Default,
}

/// <summary>What a job would do and how long it would take, computed without creating it.</summary>
/// <param name="Tokens">Rows, steps and trained tokens, counted exactly as the worker trains.</param>
/// <param name="Hyperparameters">The hyperparameters with "auto" resolved as the worker resolves them.</param>
/// <param name="Duration">Run time from start to finish: training plus the safety evaluation stages.</param>
/// <param name="MeasuredJobs">Finished jobs the measured rate comes from (0 for <see cref="EstimateBasis.Default"/>).</param>
/// <param name="MeasuredDeviceKind">The device kind those jobs trained on; null for <see cref="EstimateBasis.Default"/>.</param>
/// <param name="PoolDeviceKinds">The device kinds of the live workers when the estimate was made (empty: none up).</param>
public sealed record JobEstimate(TrainingTokenCount Tokens, ResolvedHyperparameters Hyperparameters, TimeSpan Duration,
    EstimateBasis Basis, int MeasuredJobs, string? MeasuredDeviceKind, IReadOnlyCollection<string> PoolDeviceKinds);

/// <summary>
/// Estimates a supervised or preference (DPO) job before it exists: reads the training file, tokenizes it with the root base model's
/// tokenizer and chat template (only the bundle's tokenizer files are read; torch-free) and counts the tokens the
/// worker will train on (<see cref="TrainingTokenCount"/>, the same rows and schedule as the trainer). The duration
/// is measured on the last <see cref="RecentJobs"/> succeeded jobs on the same root base model and device kind: the
/// trained tokens at their training time per token (start to last metrics event), plus each evaluation stage at their
/// time per stage (last metrics event to finish, over their stored safety reports).
/// <para>
/// Which device kinds count: those of the live gpu-queue servers (<see cref="WorkerPool"/>), or every recorded kind
/// when no worker is up. Each kind with measured jobs gives an estimate and the longest is returned, since Hangfire
/// may hand the job to any live server. No measured job on those kinds: the stated defaults.
/// </para>
/// </summary>
public sealed class JobEstimator(IArtifactStore artifacts, IConfiguration configuration, WorkerPool pool)
{
    /// <summary>Training throughput assumed before any job on the root base model has finished.</summary>
    public const double DefaultTokensPerSecond = 2_000;

    /// <summary>Time assumed per safety evaluation stage (base model, trained model, each weight-changing post-training step) before any measurement.</summary>
    public static readonly TimeSpan DefaultEvaluationStage = TimeSpan.FromSeconds(30);

    /// <summary>Finished jobs the measured rate averages over, per device kind.</summary>
    public const int RecentJobs = 20;

    /// <summary>Device kinds read at once (cpu and cuda today), which bounds the jobs read to <see cref="RecentJobs"/> times this.</summary>
    private const int MaxDeviceKinds = 4;

    /// <summary>The worker's default cut of training rows (<c>Worker:MaxSequenceLength</c>).</summary>
    public const int DefaultMaxSequenceLength = 512;

    private static readonly string[] TokenizerFiles =
    [
        TokenizerFolder.VocabFile, TokenizerFolder.MergesFile, TokenizerFolder.TokenizerJsonFile,
        TokenizerFolder.TokenizerConfigFile, TokenizerFolder.SpecialTokensMapFile,
    ];

    private readonly ConcurrentDictionary<string, ITextTokenizer> _tokenizers = new();

    /// <summary>Rows are cut as the worker cuts them: the same <c>Worker:MaxSequenceLength</c> setting.</summary>
    public int MaxSequenceLength => configuration.GetValue("Worker:MaxSequenceLength", DefaultMaxSequenceLength);

    /// <summary>The estimate for a job on <paramref name="rootModel"/> training on <paramref name="trainingFile"/>.</summary>
    /// <param name="evaluationStages">Safety evaluation stages the job runs.</param>
    /// <exception cref="InvalidDataException">The training file is not chat JSONL, or the root model's files are missing.</exception>
    public async Task<JobEstimate> EstimateAsync(FineTuneDbContext db, string rootModel, StoredFile trainingFile, JobMethod method,
        long seed, int evaluationStages, CancellationToken cancellationToken)
    {
        if (JobPromotion.FormatMismatch(trainingFile, "training_file", method.IsPreference) is { } mismatch) throw new InvalidDataException(mismatch);
        var root = await db.BaseModels.AsNoTracking().Where(m => m.Id == rootModel).Select(m => m.ArtifactSha256).SingleOrDefaultAsync(cancellationToken)
            ?? throw new InvalidDataException($"The root base model {rootModel} no longer exists.");
        var tokenizer = await TokenizerAsync(root, cancellationToken);
        ResolvedHyperparameters hyperparameters;
        TrainingTokenCount tokens;
        if (method.IsPreference)
        {
            var pairs = await ReadPairsAsync(trainingFile.Sha256, cancellationToken);
            hyperparameters = ResolvedHyperparameters.Resolve(method.Hyperparameters, pairs.Count);
            try
            {
                tokens = TrainingTokenCount.OfPreference(pairs, tokenizer, MaxSequenceLength, hyperparameters.Epochs, hyperparameters.BatchSize, seed);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException(e.Message, e);
            }
        }
        else
        {
            var examples = await ReadExamplesAsync(trainingFile.Sha256, cancellationToken);
            hyperparameters = ResolvedHyperparameters.Resolve(method.Hyperparameters, examples.Count);
            tokens = TrainingTokenCount.Of(examples, tokenizer, MaxSequenceLength, hyperparameters.Epochs, hyperparameters.BatchSize, seed);
        }

        // Training and evaluation are measured apart: training scales with tokens, an evaluation stage does not.
        // Training ends at a job's last metrics event; what follows until it finished is its evaluation stages.
        var live = pool.LiveDeviceKinds();
        string[] kinds = [.. live];
        var recent = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Succeeded && (j.RootModel ?? j.Model) == rootModel && j.DeviceKind != null
                && j.StartedAt != null && j.FinishedAt != null && j.TrainedTokens > 0)
            .Where(j => kinds.Length == 0 || kinds.Contains(j.DeviceKind!))
            .OrderByDescending(j => j.FinishedAt).Take(RecentJobs * MaxDeviceKinds)
            .Select(j => new
            {
                DeviceKind = j.DeviceKind!, StartedAt = j.StartedAt!.Value, FinishedAt = j.FinishedAt!.Value, TrainedTokens = j.TrainedTokens!.Value,
                TrainingEnd = db.JobEvents.Where(e => e.JobId == j.Id && e.Type == JobEvents.MetricsType).Max(e => (DateTime?)e.CreatedAt),
                Stages = db.SafetyReports.Count(r => r.JobId == j.Id),
            })
            .ToListAsync(cancellationToken);

        // Per device kind, the last RecentJobs finished there; a job may go to any live server, so the slowest kind's
        // estimate is the one given (an estimate to plan on, not the best case).
        var bases = recent
            .Where(j => j.TrainingEnd is { } end && end >= j.StartedAt && end <= j.FinishedAt)
            .GroupBy(j => j.DeviceKind)
            .Select(kind =>
            {
                var measured = kind.Take(RecentJobs).ToList();
                var trainingSecondsPerToken = measured.Sum(j => (j.TrainingEnd!.Value - j.StartedAt).TotalSeconds) / measured.Sum(j => (double)j.TrainedTokens);
                var stages = measured.Sum(j => j.Stages);
                var perStage = stages > 0
                    ? TimeSpan.FromSeconds(measured.Sum(j => (j.FinishedAt - j.TrainingEnd!.Value).TotalSeconds) / stages)
                    : DefaultEvaluationStage;
                var duration = TimeSpan.FromSeconds(trainingSecondsPerToken * tokens.TrainedTokens) + perStage * evaluationStages;
                return new JobEstimate(tokens, hyperparameters, duration, EstimateBasis.Measured, measured.Count, kind.Key, live);
            })
            .ToList();
        return bases.MaxBy(b => b.Duration)
               ?? new JobEstimate(tokens, hyperparameters,
                   TimeSpan.FromSeconds(tokens.TrainedTokens / DefaultTokensPerSecond) + DefaultEvaluationStage * evaluationStages,
                   EstimateBasis.Default, 0, null, live);
    }

    private async Task<List<ChatExample>> ReadExamplesAsync(string sha256, CancellationToken cancellationToken)
    {
        await using var stream = await artifacts.OpenReadAsync(sha256, cancellationToken)
            ?? throw new InvalidDataException("The file's content is missing.");
        return await ChatJsonl.ReadAsync(stream, cancellationToken).ToListAsync(cancellationToken);
    }

    /// <summary>The file's preference pairs, as the worker reads them; a bad row throws <see cref="InvalidDataException"/>.</summary>
    private async Task<List<PreferenceExample>> ReadPairsAsync(string sha256, CancellationToken cancellationToken)
    {
        await using var stream = await artifacts.OpenReadAsync(sha256, cancellationToken)
            ?? throw new InvalidDataException("The file's content is missing.");
        // The reader is synchronous: buffer the content first so no synchronous read hits the database stream.
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, cancellationToken);
        buffer.Position = 0;
        return [.. PreferenceJsonl.Read(buffer)];
    }

    /// <summary>The tokenizer of bundle <paramref name="sha256"/>: its tokenizer files unpacked into a scratch folder, loaded once per bundle.</summary>
    private async Task<ITextTokenizer> TokenizerAsync(string sha256, CancellationToken cancellationToken)
    {
        if (_tokenizers.TryGetValue(sha256, out var cached)) return cached;
        var folder = Directory.CreateTempSubdirectory("fts-estimate-tokenizer-").FullName;
        try
        {
            await using (var bundle = await artifacts.OpenReadAsync(sha256, cancellationToken)
                ?? throw new InvalidDataException($"The base model bundle {sha256} is missing."))
            {
                await using var tar = new TarReader(bundle, leaveOpen: true);
                while (await tar.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
                {
                    if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || !TokenizerFiles.Contains(entry.Name)) continue;
                    await using var output = File.Create(Path.Combine(folder, entry.Name));
                    if (entry.DataStream is not null) await entry.DataStream.CopyToAsync(output, cancellationToken);
                }
            }
            return _tokenizers.GetOrAdd(sha256, TokenizerFolder.Load(folder));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
