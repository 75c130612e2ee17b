namespace FineTuneService.Api.Contracts;

internal static class UnixTime
{
    public static long Seconds(DateTime utc) => new DateTimeOffset(DateTime.SpecifyKind(utc, DateTimeKind.Utc)).ToUnixTimeSeconds();

    public static long? Seconds(DateTime? utc) => utc is null ? null : Seconds(utc.Value);
}
