using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>The canonical path beyond AWS's suite: double encoding for generic services (Lambda ARNs), single
/// encoding without normalization for S3 keys, and the per-service defaults that choose between them.</summary>
public class CanonicalPathTests
{
    private static readonly SigV4Options Generic = new("service", "us-east-1");
    private static readonly SigV4Options S3 = new("s3", "us-east-1");

    private static string CanonicalPath(string wirePath, SigV4Options options) =>
        Line(SigV4.Sign("GET", wirePath, "", Headers(("Host", "example.amazonaws.com")), SigV4.UnsignedPayload, Time, Credentials(), options).CanonicalRequest, 1);

    // botocore's older test suite: '$' is legal raw in a path; the canonical path encodes it (once).
    [Test]
    public void DollarInPathIsPercentEncoded_BotocoreCase()
    {
        var signature = SigV4.Sign("GET", "/example/$delete", "", Headers(("Host", "example.amazonaws.com")), EmptyHash, Time, Credentials(), Generic);

        const string expected = "GET\n/example/%24delete\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.Authorization, Is.EqualTo(Authorization(expected, "host;x-amz-date", AmzDate, "us-east-1", "service")));
    }

    [Test]
    public void DollarAlreadyEscapedOnTheWireIsEncodedAgain() =>
        Assert.That(CanonicalPath("/example/%24delete", Generic), Is.EqualTo("/example/%2524delete"));

    [Test]
    public async Task DollarInPath_ThroughSignAsync()
    {
        var uri = new Uri("https://example.amazonaws.com/example/$delete");
        Assert.That(uri.AbsolutePath, Is.EqualTo("/example/$delete"), "System.Uri keeps '$' raw in a path");
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);

        var signature = await SigV4.SignAsync(request, Credentials(), new SigV4Options("service", "us-east-1") { Clock = new ManualClock(Time) });

        Assert.That(Line(signature.CanonicalRequest, 1), Is.EqualTo("/example/%24delete"));
    }

    private const string LambdaArnWirePath =
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A123456789012%3Afunction%3Amy-function%3Aprod/invocations";

    private const string LambdaArnCanonicalRequest =
        "POST\n" +
        "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A123456789012%253Afunction%253Amy-function%253Aprod/invocations\n" +
        "\n" +
        "host:lambda.us-west-2.amazonaws.com\n" +
        "x-amz-date:20150830T123600Z\n" +
        "\n" +
        "host;x-amz-date\n" +
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"; // SHA-256 of "{}"

    [Test]
    public void LambdaArnWithQualifier_IsDoubleEncoded()
    {
        var options = new SigV4Options("lambda", "us-west-2");
        var signature = SigV4.Sign("POST", LambdaArnWirePath, "", Headers(("Host", "lambda.us-west-2.amazonaws.com")),
            SigV4.HashPayload("{}"u8), Time, Credentials(), options);

        Assert.That(signature.CanonicalRequest, Is.EqualTo(LambdaArnCanonicalRequest));
        Assert.That(signature.Authorization, Is.EqualTo(Authorization(LambdaArnCanonicalRequest, "host;x-amz-date", AmzDate, "us-west-2", "lambda")));
    }

    [Test]
    public async Task LambdaArnWithQualifier_ThroughSignAsync_IsDoubleEncoded()
    {
        var uri = new Uri("https://lambda.us-west-2.amazonaws.com" + LambdaArnWirePath);
        // System.Uri keeps %3A as it is (':' is reserved, so its escape is significant), and HttpClient sends PathAndQuery.
        Assert.That(uri.PathAndQuery, Is.EqualTo(LambdaArnWirePath));
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent("{}"u8.ToArray()) };
        var options = new SigV4Options("lambda", "us-west-2") { Clock = new ManualClock(Time) };

        var signature = await SigV4.SignAsync(request, Credentials(), options);

        Assert.That(signature.CanonicalRequest, Is.EqualTo(LambdaArnCanonicalRequest));
        Assert.That(request.Headers.GetValues("Authorization").Single(),
            Is.EqualTo(Authorization(LambdaArnCanonicalRequest, "host;x-amz-date", AmzDate, "us-west-2", "lambda")));
    }

    [Test]
    public void LambdaArnWithRawColons_IsEncodedOnce() =>
        Assert.That(CanonicalPath("/2015-03-31/functions/arn:aws:lambda:us-west-2:123456789012:function:my-function/invocations", new SigV4Options("lambda", "us-west-2")),
            Is.EqualTo("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A123456789012%3Afunction%3Amy-function/invocations"));

    // S3: the canonical path is the key encoded once (RFC 3986, '/' kept), whatever escapes the wire used for it.
    [TestCase("/my-bucket/%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D",
              "/my-bucket/%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D",
              TestName = "S3 key: every reserved ASCII character, escaped on the wire")]
    [TestCase("/my-bucket/%2a%2b%3a%5b%5d%7b%7c", "/my-bucket/%2A%2B%3A%5B%5D%7B%7C", TestName = "S3 key: lowercase escapes become uppercase")]
    [TestCase("/my-bucket/!$&'()*+,;=:@", "/my-bucket/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40", TestName = "S3 key: sub-delimiters sent raw")]
    [TestCase("/my-bucket/a+b", "/my-bucket/a%2Bb", TestName = "S3 key: '+' in a path is a plus, not a space")]
    [TestCase("/my-bucket/a%20b%20%20c", "/my-bucket/a%20b%20%20c", TestName = "S3 key: spaces")]
    [TestCase("/my-bucket/%41-_.~%7E%2D", "/my-bucket/A-_.~~-", TestName = "S3 key: escaped unreserved characters are decoded")]
    [TestCase("/my-bucket/%C3%BC%E2%82%AC%F0%9F%98%80", "/my-bucket/%C3%BC%E2%82%AC%F0%9F%98%80", TestName = "S3 key: non-ASCII, escaped on the wire")]
    [TestCase("/my-bucket/\u00fc\u20ac\U0001F600", "/my-bucket/%C3%BC%E2%82%AC%F0%9F%98%80", TestName = "S3 key: non-ASCII, given raw")]
    [TestCase("/my-bucket/a/../b", "/my-bucket/a/../b", TestName = "S3 key: a/../b kept")]
    [TestCase("/my-bucket/./a/.", "/my-bucket/./a/.", TestName = "S3 key: dot segments kept")]
    [TestCase("/my-bucket//a//b//", "/my-bucket//a//b//", TestName = "S3 key: double slashes kept")]
    [TestCase("/my-bucket/a%2Fb", "/my-bucket/a/b", TestName = "S3 key: an escaped slash is a slash")]
    [TestCase("/my-bucket/100%", "/my-bucket/100%25", TestName = "S3 key: a lone percent sign is encoded")]
    public void S3Key_IsEncodedOnce_NotNormalized(string wirePath, string expected) =>
        Assert.That(CanonicalPath(wirePath, S3), Is.EqualTo(expected));

    [Test]
    public void S3Key_FullCanonicalRequest()
    {
        var signature = SigV4.Sign("GET", "/my-bucket/photos/a%20b/../c%2Bd.jpg", "", Headers(("Host", "s3.us-east-1.amazonaws.com")),
            SigV4.UnsignedPayload, Time, Credentials(), S3);

        const string expected =
            "GET\n" +
            "/my-bucket/photos/a%20b/../c%2Bd.jpg\n" +
            "\n" +
            "host:s3.us-east-1.amazonaws.com\n" +
            "x-amz-content-sha256:UNSIGNED-PAYLOAD\n" +
            "x-amz-date:20150830T123600Z\n" +
            "\n" +
            "host;x-amz-content-sha256;x-amz-date\n" +
            "UNSIGNED-PAYLOAD";
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.Signature, Is.EqualTo(Signature(expected, AmzDate, "us-east-1", "s3")));
        Assert.That(signature.HeadersToAdd, Does.Contain(new KeyValuePair<string, string>("x-amz-content-sha256", "UNSIGNED-PAYLOAD")));
    }

    [Test]
    public async Task S3Key_ThroughSignAsync_WithAnUncanonicalizedUri_KeepsDotSegments()
    {
        // A default Uri would remove "a/.." (and fetch another object); this option sends the path as given.
        var uri = new Uri("https://my-bucket.s3.us-east-1.amazonaws.com/a/../b//c%20d+e",
            new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
        Assert.That(uri.PathAndQuery, Is.EqualTo("/a/../b//c%20d+e"));
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);

        var signature = await SigV4.SignAsync(request, Credentials(), new SigV4Options("s3", "us-east-1") { Clock = new ManualClock(Time) });

        Assert.That(Line(signature.CanonicalRequest, 1), Is.EqualTo("/a/../b//c%20d%2Be"));
    }

    [Test]
    public void S3_NormalizationAndDoubleEncodingCanBeTurnedOnExplicitly() =>
        Assert.That(CanonicalPath("/my-bucket/a/../b%20c", new SigV4Options("s3", "us-east-1") { NormalizePath = true, DoubleEncodePath = true }),
            Is.EqualTo("/my-bucket/b%2520c"));

    [Test]
    public void Generic_NormalizesThenEncodesAgain() =>
        Assert.That(CanonicalPath("/a/./b/../c//d%20e/", Generic), Is.EqualTo("/a/c/d%2520e/"));

    [TestCase("s3")]
    [TestCase("s3-object-lambda")]
    [TestCase("s3-outposts")]
    [TestCase("s3express")]
    public void S3FamilyDefaults(string service)
    {
        var options = new SigV4Options(service, "us-east-1");
        Assert.That(options.AddContentSha256Header, Is.True);
        Assert.That(options.NormalizePath, Is.False);
        Assert.That(options.DoubleEncodePath, Is.False);
        Assert.That(options.SignSessionToken, Is.True);
        Assert.That(options.Algorithm, Is.EqualTo(SigningAlgorithm.SigV4));
        Assert.That(options.PayloadHash, Is.Null);
    }

    [TestCase("lambda")]
    [TestCase("execute-api")]
    [TestCase("sts")]
    public void GenericDefaults(string service)
    {
        var options = new SigV4Options(service, "us-east-1");
        Assert.That(options.AddContentSha256Header, Is.False);
        Assert.That(options.NormalizePath, Is.True);
        Assert.That(options.DoubleEncodePath, Is.True);
        Assert.That(options.SignSessionToken, Is.True);
    }

    // botocore, the CRT (aws-c-auth), smithy-rs aws-sigv4 and Fluent Bit end the canonical path in '/' only when the
    // path as sent does: a final dot segment leaves no slash behind.
    [TestCase("/a/b/.", "/a/b", TestName = "Dot segments: a final '.' leaves no trailing slash")]
    [TestCase("/a/b/..", "/a", TestName = "Dot segments: a final '..' leaves no trailing slash")]
    [TestCase("/a/b/./", "/a/b/", TestName = "Dot segments: a final './' keeps the slash sent")]
    [TestCase("/a/b/../", "/a/", TestName = "Dot segments: a final '../' keeps the slash sent")]
    [TestCase("/a/..", "/", TestName = "Dot segments: back to the root")]
    [TestCase("/.", "/", TestName = "Dot segments: the root's '.'")]
    [TestCase("/..", "/", TestName = "Dot segments: '..' above the root stays at the root")]
    [TestCase("/a/./b/../c", "/a/c", TestName = "Dot segments: in the middle")]
    [TestCase("/a//b//", "/a/b/", TestName = "Dot segments: '//' collapsed, the final slash kept")]
    [TestCase("/a/.b/..c/", "/a/.b/..c/", TestName = "Dot segments: names that start with dots are not dot segments")]
    public void DotSegmentsAsAwsSignersResolveThem(string wirePath, string expected) =>
        Assert.That(CanonicalPath(wirePath, Generic), Is.EqualTo(expected));

    [Test]
    public void DotSegments_FullCanonicalRequestAndSignature()
    {
        var signature = SigV4.Sign("GET", "/a/b/..", "", Headers(("Host", "example.amazonaws.com")), EmptyHash, Time, Credentials(), Generic);

        const string expected = "GET\n/a\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.Authorization, Is.EqualTo(Authorization(expected, "host;x-amz-date", AmzDate, "us-east-1", "service")));
    }

    [Test]
    public void EmptyPathIsTheRoot() =>
        Assert.That(CanonicalPath("", Generic), Is.EqualTo("/"));
}
