using System.Security.Cryptography;
using System.Text;
using FineTuneService.Core.Domain;

namespace FineTuneService.Api.Auth;

/// <summary>Tenant API keys: "sk-fts-" and 40 random base62 characters; only their SHA-256 is stored.</summary>
internal static class ApiKeys
{
    public const string Prefix = "sk-fts-";
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string Generate() => Prefix + RandomNumberGenerator.GetString(Alphabet, 40);

    /// <summary>A new key for <paramref name="tenantId"/>: the row to store (hash and prefix only) and the key to show once.</summary>
    public static (ApiKey Row, string Key) Issue(string tenantId)
    {
        var key = Generate();
        return (new ApiKey { TenantId = tenantId, KeyHash = Hash(key), Prefix = DisplayPrefix(key) }, key);
    }

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>The part shown to humans to tell keys apart.</summary>
    public static string DisplayPrefix(string key) => key[..Math.Min(key.Length, Prefix.Length + 4)];

    /// <summary>Constant-time comparison, so response times do not reveal how much of a guess was right.</summary>
    public static bool Matches(string candidate, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(candidate)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}
