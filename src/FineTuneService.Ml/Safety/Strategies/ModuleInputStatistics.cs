using static TorchSharp.torch;

namespace FineTuneService.Ml.Safety.Strategies;

/// <summary>
/// Per-input-feature mean of x^2 (fp32) of the inputs of named modules, over every token of the forward passes run while
/// it is attached. Unlike the decoder's projection recorder it can watch any module, e.g. the lora_A and lora_B linears
/// inside a LoRA projection (lora_B's input is lora_A's output). Dispose to remove the hooks.
/// </summary>
internal sealed class ModuleInputStatistics : IDisposable
{
    private readonly Dictionary<string, Tensor> _sums = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _tokens = new(StringComparer.Ordinal);
    private readonly List<IDisposable> _removers = [];

    public ModuleInputStatistics(nn.Module model, Func<string, bool> select)
    {
        foreach (var (name, module) in model.named_modules())
        {
            if (!select(name) || module is not nn.Module<Tensor, Tensor> linear) continue;
            var remover = linear.register_forward_pre_hook((_, input) =>
            {
                Record(name, input);
                return input;
            });
            _removers.Add(new Remover(remover.remove));
        }
    }

    /// <summary>Mean of x^2 per input feature, by module name; tensors are owned by the caller.</summary>
    public Dictionary<string, Tensor> MeanSquares() =>
        _sums.ToDictionary(s => s.Key, s => (s.Value / Math.Max(1, _tokens[s.Key])).DetachFromDisposeScope(), StringComparer.Ordinal);

    private void Record(string name, Tensor input)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rows = input.detach().to_type(ScalarType.Float32).reshape(-1, input.shape[^1]);
        var squares = rows.pow(2).sum(dim: 0); // sum(0) would bind to sum(ScalarType) and total everything
        if (_sums.TryGetValue(name, out var sum)) sum.add_(squares);
        else _sums[name] = squares.DetachFromDisposeScope();
        _tokens[name] = _tokens.GetValueOrDefault(name) + rows.shape[0];
    }

    public void Dispose()
    {
        foreach (var remover in _removers) remover.Dispose();
        _removers.Clear();
        foreach (var sum in _sums.Values) sum.Dispose();
        _sums.Clear();
    }

    private sealed class Remover(Action remove) : IDisposable
    {
        public void Dispose() => remove();
    }
}
