using System.Security.Cryptography;

namespace FineTuneService.Core.Domain;

/// <summary>OpenAI-style ids: a resource prefix and 24 random base62 characters.</summary>
public static class Ids
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string New(string prefix) => prefix + RandomNumberGenerator.GetString(Alphabet, 24);

    public static string Tenant() => New("tenant-");
    public static string File() => New("file-");
    public static string Job() => New("ftjob-");
    public static string Event() => New("ftevent-");
    public static string Checkpoint() => New("ftckpt-");
    public static string Evaluation() => New("safeval-");
    public static string HardeningRun() => New("hardrun-");
    public static string HardeningEvent() => New("hardevent-");
}
