using System.Text.Json;
using System.Text.Json.Serialization;

namespace FineTuneService.Research.Benchmarks;

/// <summary>
/// The resumable benchmarks' results files: snake_case JSON written atomically (temp file then rename, so an
/// interrupted run never leaves a torn file), and resumed only under the fingerprint they were started with.
/// </summary>
internal static class BenchmarkResultsFile
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static T Load<T>(string path) =>
        JsonSerializer.Deserialize<T>(File.ReadAllText(path), Json) ?? throw new JsonException($"{path} is empty.");

    public static void Save<T>(string path, T results)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(results, Json));
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The results stored at <paramref name="path"/>, or null when there are none yet.</summary>
    /// <exception cref="InvalidOperationException">The stored results are of another setting or base model.</exception>
    public static T? LoadResumable<T>(string path, string fingerprint, Func<T, string> fingerprintOf) where T : class
    {
        if (!File.Exists(path)) return null;
        var stored = Load<T>(path);
        if (fingerprintOf(stored) != fingerprint)
            throw new InvalidOperationException(
                $"{path} holds results of another setting or base model (fingerprint {fingerprintOf(stored)}, this run {fingerprint}). " +
                "Use another --out folder, or delete the file to start over.");
        return stored;
    }
}
