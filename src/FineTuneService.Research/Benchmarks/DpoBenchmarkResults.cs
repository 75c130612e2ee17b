namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// One model of the DPO benchmark: the base (<see cref="Name"/> "base") or a fine-tuned run. Rates are percentages;
/// the held-back figures are over the same unflipped held-back pairs for every run.
/// </summary>
public sealed record DpoBenchmarkRun
{
    public string Name { get; init; } = "";
    /// <summary>HS, over-refusal and FA by the safety benchmark's evaluation.</summary>
    public SafetyBenchmarkCell Safety { get; init; } = new();
    /// <summary>Refusals on the harmful prompts (keyword rule): 100 − the keyword HS.</summary>
    public double RefusalRate => 100 - Safety.KeywordHarmfulScore;

    /// <summary>
    /// DPO's reward accuracy on the held-back pairs with the base model as reference: the share of pairs whose
    /// chosen answer gained more log-probability over the base than the rejected one. The base itself has every
    /// margin 0, so 0 % (chance would be 50 %).
    /// </summary>
    public double HeldBackRewardAccuracy { get; init; }
    /// <summary>Mean β-scaled margin on the held-back pairs (chosen minus rejected log-ratio against the base).</summary>
    public double HeldBackRewardMargin { get; init; }
    /// <summary>Share of held-back pairs whose chosen answer has the higher summed log-probability under the model (no reference).</summary>
    public double HeldBackPreferenceAccuracy { get; init; }
    /// <summary>The trainer's own validation reward accuracy on the held-back pairs (DPO runs), a check on <see cref="HeldBackRewardAccuracy"/>.</summary>
    public double? TrainerValidationRewardAccuracy { get; init; }

    public int Steps { get; init; }
    /// <summary>Non-padding tokens trained on (both sides of every pair for DPO).</summary>
    public long TrainingTokens { get; init; }
    public double? FinalTrainingLoss { get; init; }
    /// <summary>Reward accuracy of the last few training steps (DPO runs), mean.</summary>
    public double? FinalTrainingRewardAccuracy { get; init; }
    /// <summary>Tokens per second of optimizer-step time (the trainer's clock; no reference pass, no evaluation).</summary>
    public double TokensPerSecond { get; init; }
    /// <summary>Training wall time including DPO's reference pass.</summary>
    public double TrainingSeconds { get; init; }
    /// <summary>Resident set size when training started and its peak during training (bytes).</summary>
    public long RssBeforeTraining { get; init; }
    public long PeakRssDuringTraining { get; init; }
    /// <summary>How the peak was read: "VmHWM" (kernel high-water mark, reset before training) or "sampled" (per step).</summary>
    public string? PeakRssSource { get; init; }
    public double WallSeconds { get; init; }
    public string? Environment { get; init; }

    /// <summary>The service's safety gate on this run against the base, under the default policy (filled by the CLI).</summary>
    public string? GateDecision { get; init; }
    public string? GateMessage { get; init; }
}

/// <summary>A DPO benchmark results file: its setting, fingerprint, the pairs used, the base and every finished run.</summary>
public sealed record DpoBenchmarkResults
{
    public string Fingerprint { get; init; } = "";
    public DpoBenchmarkOptions Options { get; init; } = new();
    public string BaseModel { get; init; } = "";
    public string BaseModelSha256 { get; init; } = "";
    public string PairsSource { get; init; } = "";
    public int UsablePairs { get; init; }
    public int SelectedPairs { get; init; }
    public DpoBenchmarkRun? Base { get; init; }
    public IReadOnlyList<DpoBenchmarkRun> Runs { get; init; } = [];

    public DpoBenchmarkRun? Find(string name) => Runs.FirstOrDefault(r => r.Name == name);

    public static DpoBenchmarkResults LoadOrCreate(string path, DpoBenchmarkResults fresh) =>
        BenchmarkResultsFile.LoadResumable<DpoBenchmarkResults>(path, fresh.Fingerprint, r => r.Fingerprint) is { } stored
            ? stored with { Options = fresh.Options }
            : fresh;

    public static DpoBenchmarkResults Load(string path) => BenchmarkResultsFile.Load<DpoBenchmarkResults>(path);

    public void Save(string path) => BenchmarkResultsFile.Save(path, this);
}
