using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Models;

/// <summary>
/// Accumulates, during forward passes, the fp32 sum of squares per input channel of chosen projections
/// (the statistics activation-aware methods need), via forward pre-hooks. Dispose to remove the hooks.
/// Attach after LoRA injection: hooks stay on the module objects they were registered on.
/// </summary>
public sealed class LinearInputRecorder : IDisposable
{
    private readonly Dictionary<string, Tensor> _sumOfSquares = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _tokens = new(StringComparer.Ordinal);
    private readonly List<Action> _removeHooks = [];

    /// <param name="model">model whose projections are observed</param>
    /// <param name="select">module paths to record (e.g. "model.layers.0.mlp.down_proj"); all projections when null</param>
    public LinearInputRecorder(DecoderLM model, Func<string, bool>? select = null)
    {
        foreach (var (name, module) in model.Projections())
        {
            if (select is not null && !select(name)) continue;
            _tokens[name] = 0;
            var hook = module.register_forward_pre_hook((_, input) =>
            {
                Record(name, input);
                return input;
            });
            _removeHooks.Add(hook.remove);
        }
    }

    /// <summary>Optional mask [B, T] (1 = count this token) applied to subsequent forwards, e.g. to skip padding.</summary>
    public Tensor? TokenMask { get; set; }

    /// <summary>When false, forwards pass without being recorded.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Module paths being recorded.</summary>
    public IReadOnlyCollection<string> Names => _tokens.Keys;

    /// <summary>Sum over recorded tokens of x² per input channel, fp32 [in_features]; owned by the recorder.</summary>
    public Tensor SumOfSquares(string name) =>
        _sumOfSquares.TryGetValue(name, out var sum) ? sum : throw new KeyNotFoundException($"Nothing recorded for '{name}'.");

    public long TokenCount(string name) => _tokens[name];

    /// <summary>Mean of x² per input channel (a new tensor).</summary>
    public Tensor MeanSquare(string name) => SumOfSquares(name) / Math.Max(1, TokenCount(name));

    public void Reset()
    {
        foreach (var sum in _sumOfSquares.Values) sum.Dispose();
        _sumOfSquares.Clear();
        foreach (var name in _tokens.Keys.ToList()) _tokens[name] = 0;
    }

    private void Record(string name, Tensor input)
    {
        if (!Enabled) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rows = input.detach().to_type(ScalarType.Float32).reshape(-1, input.shape[^1]);
        if (TokenMask is not null)
        {
            var keep = TokenMask.to(rows.device).reshape(-1).to_type(ScalarType.Bool);
            rows = rows.index_select(0, keep.nonzero().squeeze(1));
        }
        var squares = rows.pow(2).sum(0L, keepdim: false);
        if (_sumOfSquares.TryGetValue(name, out var sum)) sum.add_(squares);
        else _sumOfSquares[name] = squares.DetachFromDisposeScope();
        _tokens[name] += rows.shape[0];
    }

    public void Dispose()
    {
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
        Reset();
    }
}
