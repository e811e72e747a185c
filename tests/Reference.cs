using System.Security.Cryptography;
using System.Text;
using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>
/// Shared test values and an independent implementation of steps 2 to 4 (string to sign, signing key, signature),
/// written from the specification with the BCL's HMAC, so that a test can check the library's signature against
/// the canonical request the test wrote out by hand, without calling the code under test.
/// </summary>
internal static class Reference
{
    public const string AccessKeyId = "AKIDEXAMPLE";
    public const string Secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    // Has '+', '/' and '=' (as real tokens do), so that query encoding of the token is exercised.
    public const string Token = "IQoJb3JpZ2luX2VjEXAMPLE+token/with==";
    public const string EmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    public static readonly DateTimeOffset Time = new(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);
    public const string AmzDate = "20150830T123600Z";

    public static AwsCredentials Credentials(string? token = null) => new(AccessKeyId, Secret, token);

    public static List<KeyValuePair<string, string>> Headers(params (string Name, string Value)[] headers) =>
        headers.Select(h => new KeyValuePair<string, string>(h.Name, h.Value)).ToList();

    public static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static string Sha256Hex(string text) => Sha256Hex(Encoding.UTF8.GetBytes(text));

    /// <summary>The SigV4 signature of a canonical request, computed from the specification.</summary>
    public static string Signature(string canonicalRequest, string amzDate, string region, string service, string secret = Secret)
    {
        string date = amzDate[..8];
        string stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{date}/{region}/{service}/aws4_request\n{Sha256Hex(canonicalRequest)}";
        byte[] key = Encoding.UTF8.GetBytes("AWS4" + secret);
        foreach (var part in new[] { date, region, service, "aws4_request" })
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        return Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
    }

    /// <summary>The Authorization header value for a canonical request, computed from the specification.</summary>
    public static string Authorization(string canonicalRequest, string signedHeaders, string amzDate, string region, string service) =>
        $"AWS4-HMAC-SHA256 Credential={AccessKeyId}/{amzDate[..8]}/{region}/{service}/aws4_request, SignedHeaders={signedHeaders}, " +
        $"Signature={Signature(canonicalRequest, amzDate, region, service)}";

    /// <summary>Line <paramref name="index"/> of a canonical request (0 method, 1 path, 2 query, 3.. headers).</summary>
    public static string Line(string canonicalRequest, int index) => canonicalRequest.Split('\n')[index];

    /// <summary>The last line of a canonical request: the payload hash.</summary>
    public static string PayloadHashLine(string canonicalRequest) => canonicalRequest[(canonicalRequest.LastIndexOf('\n') + 1)..];

    /// <summary>Asserts that a bad-input exception names the problem and the fix, and gives away no secret.</summary>
    public static void AssertHelpful(Exception e, params string[] mustContain)
    {
        foreach (var text in mustContain)
            Assert.That(e.Message, Does.Contain(text).IgnoreCase, $"the message should say '{text}'");
        Assert.That(e.Message, Does.Not.Contain(Secret));
        Assert.That(e.Message, Does.Not.Contain(Token));
        Assert.That(e.ToString(), Does.Not.Contain(Secret));
        Assert.That(e.ToString(), Does.Not.Contain(Token));
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>A stream that can be read once, front to back, like a network stream; counts the bytes read.</summary>
internal sealed class ReadOnceStream(byte[] data) : Stream
{
    private readonly MemoryStream _inner = new(data);

    public int BytesRead { get; private set; }

    public override int Read(byte[] buffer, int offset, int count)
    {
        int n = _inner.Read(buffer, offset, count);
        BytesRead += n;
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
