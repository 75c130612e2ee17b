using FineTuneService.Core.Models;
using FineTuneService.Ml.Inference;
using FineTuneService.Worker.Models;
using FineTuneService.Worker.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FineTuneService.Worker.Inference;

/// <summary>
/// The models this server has loaded, a bounded least-recently-used set per device: a model is loaded once per
/// weights bundle (<see cref="UsableModel.WeightsSha256"/>: a checkpoint and the final model with the same bytes load once) on the device with the most free budget, and after each load the
/// idle least recently used models of that device are unloaded until its models fit
/// <see cref="InferenceOptions.MaxLoadedModels"/> and <see cref="InferenceOptions.MemoryBudgetMiB"/>. A model in
/// use (a lease is held) is never unloaded.
/// </summary>
public sealed class ServingModels(BaseModelCache bundles, IOptions<InferenceOptions> options, ILogger<ServingModels> logger) : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _entries = [];
    private long _clock;

    private string[] Devices => options.Value.Devices.Length == 0 ? ["cpu"] : options.Value.Devices;

    /// <summary>Weights keys of the loaded models (reported in the endpoint's heartbeat).</summary>
    public IReadOnlyList<string> Loaded
    {
        get
        {
            lock (_gate) return _entries.Values.Where(e => e.Loading.IsCompletedSuccessfully).Select(e => e.Key).ToList();
        }
    }

    /// <summary>Sequences waiting or decoding over all loaded models.</summary>
    public int Load
    {
        get
        {
            lock (_gate) return _entries.Values.Where(e => e.Loading.IsCompletedSuccessfully).Sum(e => e.Loading.Result.Batcher.Load);
        }
    }

    /// <summary>Weights bytes loaded per device.</summary>
    public IReadOnlyDictionary<string, long> BytesPerDevice
    {
        get
        {
            lock (_gate)
                return Devices.ToDictionary(d => d, d => _entries.Values.Where(e => e.Device == d && e.Loading.IsCompletedSuccessfully)
                    .Sum(e => e.Loading.Result.ParameterBytes));
        }
    }

    /// <summary>The loaded model (loading it first when needed); dispose the lease when the request is done.</summary>
    public async Task<Lease> AcquireAsync(UsableModel model, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_gate)
        {
            if (!_entries.TryGetValue(model.WeightsSha256, out entry!) || entry.Loading.IsFaulted || entry.Loading.IsCanceled)
            {
                var device = LeastUsedDevice();
                entry = new Entry(model.WeightsSha256, device, LoadAsync(model, device));
                _entries[model.WeightsSha256] = entry;
            }
            entry.Leases++;
            entry.LastUsed = ++_clock;
        }
        try
        {
            var serving = await entry.Loading.WaitAsync(cancellationToken);
            Evict(entry.Device);
            return new Lease(this, entry, serving);
        }
        catch
        {
            Release(entry);
            throw;
        }
    }

    /// <summary>Every usable model, checkpoints included, is a Hugging Face folder bundle (merged weights for LoRA).</summary>
    private async Task<ServingModel> LoadAsync(UsableModel model, string device)
    {
        var folder = await bundles.GetFolderAsync(model.WeightsSha256, CancellationToken.None);
        return await Task.Run(() =>
        {
            var serving = ServingModel.Load(folder, TrainingDevice.Resolve(device, logger), options.Value.MaxBatchSize, model.Id);
            logger.LogInformation("Loaded {Model} ({Key}) on {Device}: {MiB:F1} MiB of weights", model.Id, model.WeightsSha256, device,
                serving.ParameterBytes / 1048576.0);
            return serving;
        });
    }

    private string LeastUsedDevice()
    {
        var used = Devices.ToDictionary(d => d, d => _entries.Values.Where(e => e.Device == d).Sum(e => e.Loading.IsCompletedSuccessfully ? e.Loading.Result.ParameterBytes : 0));
        return Devices.OrderBy(d => used[d]).ThenBy(d => _entries.Values.Count(e => e.Device == d)).First();
    }

    /// <summary>Unloads idle models of <paramref name="device"/>, least recently used first, until the rest fit.</summary>
    private void Evict(string device)
    {
        var budget = options.Value.MemoryBudgetMiB * 1024 * 1024;
        var unload = new List<Entry>();
        lock (_gate)
        {
            var loaded = _entries.Values.Where(e => e.Device == device && e.Loading.IsCompletedSuccessfully).OrderBy(e => e.LastUsed).ToList();
            long Bytes() => loaded.Sum(e => e.Loading.Result.ParameterBytes);
            foreach (var candidate in loaded.ToList())
            {
                if (loaded.Count <= options.Value.MaxLoadedModels && Bytes() <= budget) break;
                if (candidate.Leases > 0) continue;
                loaded.Remove(candidate);
                _entries.Remove(candidate.Key);
                unload.Add(candidate);
            }
            if (loaded.Count > options.Value.MaxLoadedModels || Bytes() > budget)
                logger.LogWarning("Device {Device} holds {Count} models ({MiB:F0} MiB), over its limits: all are in use", device, loaded.Count, Bytes() / 1048576.0);
        }
        foreach (var entry in unload)
        {
            logger.LogInformation("Unloading {Key} from {Device} (least recently used)", entry.Key, device);
            entry.Loading.Result.Dispose();
        }
    }

    private void Release(Entry entry)
    {
        lock (_gate)
        {
            entry.Leases--;
            entry.LastUsed = ++_clock;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var entry in _entries.Values.Where(e => e.Loading.IsCompletedSuccessfully)) entry.Loading.Result.Dispose();
            _entries.Clear();
        }
    }

    internal sealed class Entry(string key, string device, Task<ServingModel> loading)
    {
        public string Key { get; } = key;
        public string Device { get; } = device;
        public Task<ServingModel> Loading { get; } = loading;
        public int Leases { get; set; }
        public long LastUsed { get; set; }
    }

    /// <summary>A model in use: it stays loaded until the lease is disposed.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly ServingModels _owner;
        private readonly Entry _entry;
        private int _disposed;

        internal Lease(ServingModels owner, Entry entry, ServingModel model)
        {
            _owner = owner;
            _entry = entry;
            Model = model;
        }

        public ServingModel Model { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) _owner.Release(_entry);
        }
    }
}
