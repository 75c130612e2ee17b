namespace FineTuneService.Service.Tests.Infrastructure;

/// <summary>
/// The configuration every test worker starts from (in-process hosts, API hosts with the worker's servers, worker
/// processes): its own model cache, a heartbeat every 0.2 s with a generous stale timeout (a loaded 2-core CI box must
/// not look like a dead worker), 64-token sequences for the tiny models, and no safety evaluation (most tests are
/// about the job mechanics, and a tiny random model's babble is no fair input for the harm classifier; the safety
/// tests turn it on and keep it to seconds). A host adds or overrides keys in a collection initializer:
/// <c>new TestWorkerSettings(cache) { ["Worker:CheckpointEverySteps"] = "5" }</c>.
/// </summary>
public sealed class TestWorkerSettings : Dictionary<string, string?>
{
    /// <summary>A recovery pass every half second, for hosts whose tests wait on crash recovery.</summary>
    public const string FastRecoveryInterval = "00:00:00.5";

    public TestWorkerSettings(string modelCache)
    {
        this["Worker:ModelCacheDirectory"] = modelCache;
        this["Worker:HeartbeatInterval"] = "00:00:00.2";
        this["Worker:StaleTimeout"] = "00:00:30";
        this["Worker:MaxSequenceLength"] = "64";
        this["SafetyEvaluation:Enabled"] = "false";
    }

    /// <summary>The safety evaluation on, with the given shipped prompt subsets (small: the tiny models answer them in about a second).</summary>
    public TestWorkerSettings WithSafetyEvaluation(int harmfulPrompts, int safePrompts, int maxNewTokens)
    {
        this["SafetyEvaluation:Enabled"] = "true";
        this["SafetyEvaluation:HarmfulPrompts"] = harmfulPrompts.ToString();
        this["SafetyEvaluation:SafePrompts"] = safePrompts.ToString();
        this["SafetyEvaluation:MaxNewTokens"] = maxNewTokens.ToString();
        return this;
    }
}
