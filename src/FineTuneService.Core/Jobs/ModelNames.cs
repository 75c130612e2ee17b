using FineTuneService.Core.Domain;

namespace FineTuneService.Core.Jobs;

/// <summary>
/// OpenAI-style names of a job's model and checkpoints: <c>ft:{base}:{tenant}:{suffix}:{job}</c>. The worker names
/// what it trains; an admin's approval of a gate-failed model names it then.
/// </summary>
public sealed record ModelNames(FineTuningJob Job)
{
    /// <summary>A job fine-tuned from a fine-tuned model names the original base, as OpenAI does.</summary>
    private string Base => Job.RootModel ?? Models.ModelAccess.RootOfName(Job.Model);

    public string FineTunedModel => $"ft:{Base}:{Job.TenantId}:{Job.Suffix ?? ""}:{Job.Id}";

    public string Checkpoint(int step) => $"{FineTunedModel}:ckpt-step-{step}";
}
