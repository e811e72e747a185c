using System.Text;

namespace SigV4Lite.Bench;

/// <summary>
/// The request every benchmark signs: a Lambda Invoke of a small JSON payload, at a fixed time, with fixed
/// credentials (the test suite's example key). Only the inputs live here; each benchmark builds what it needs.
/// </summary>
internal static class LambdaRequest
{
    public const string Url = "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/hello-world-1/invocations";
    public const string Host = "lambda.us-east-1.amazonaws.com";
    public const string Path = "/2015-03-31/functions/hello-world-1/invocations";
    public const string ContentType = "application/json";
    public const string Service = "lambda";
    public const string Region = "us-east-1";

    public const string AccessKeyId = "AKIDEXAMPLE";
    public const string SecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    public static readonly byte[] Body = "{\"hello\":1}"u8.ToArray();

    public static readonly DateTimeOffset Time = new(2025, 1, 15, 12, 30, 45, TimeSpan.Zero);

    /// <summary>A session token of the length STS issues (several hundred base64 characters).</summary>
    public static readonly string SessionToken = MakeToken(868);

    public static readonly KeyValuePair<string, string>[] Headers =
    [
        new("Host", Host),
        new("Content-Type", ContentType),
    ];

    public static AwsCredentials Credentials() => new(AccessKeyId, SecretAccessKey);

    public static AwsCredentials CredentialsWithToken() => new(AccessKeyId, SecretAccessKey, SessionToken);

    public static SigV4Options Options() => new(Service, Region) { Clock = new FixedClock(Time) };

    private static string MakeToken(int length)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        var token = new StringBuilder("IQoJb3JpZ2luX2VjE", length);
        uint x = 2463534242;
        while (token.Length < length)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            token.Append(alphabet[(int)(x % 64)]);
        }
        return token.ToString();
    }
}

/// <summary>A clock stopped at one instant, so that every signature of a run is the same.</summary>
internal sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
