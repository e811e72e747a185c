using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>Presigned URL expiry bounds, and the session token signed or added after signing, in both locations.</summary>
public class PresignAndSessionTokenTests
{
    private static readonly SigV4Options Generic = new("service", "us-east-1");
    private static readonly List<KeyValuePair<string, string>> HostOnly = Headers(("Host", "example.amazonaws.com"));

    private static SigV4Signature Presign(TimeSpan expiresIn, AwsCredentials? credentials = null, SigV4Options? options = null) =>
        SigV4.Presign("GET", "/", "", HostOnly, EmptyHash, Time, expiresIn, credentials ?? Credentials(), options ?? Generic);

    private static string[] Parameters(string query) => query.Split('&');

    [TestCase(1)]
    [TestCase(604800)]
    public void ExpiryBoundsAreAccepted(int seconds)
    {
        var signature = Presign(TimeSpan.FromSeconds(seconds));

        Assert.That(Parameters(signature.QueryParameters!), Does.Contain($"X-Amz-Expires={seconds}"));
        Assert.That(Parameters(Line(signature.CanonicalRequest, 2)), Does.Contain($"X-Amz-Expires={seconds}"));
    }

    [Test]
    public void SevenDaysIsTheMaximum() =>
        Assert.That(Parameters(Presign(TimeSpan.FromDays(7)).QueryParameters!), Does.Contain("X-Amz-Expires=604800"));

    private static IEnumerable<TestCaseData> BadExpiries()
    {
        yield return new TestCaseData(TimeSpan.Zero).SetName("Expiry rejected: 0 s");
        yield return new TestCaseData(TimeSpan.FromSeconds(604801)).SetName("Expiry rejected: 604801 s");
        yield return new TestCaseData(TimeSpan.FromSeconds(-1)).SetName("Expiry rejected: -1 s");
        yield return new TestCaseData(TimeSpan.FromMilliseconds(1500)).SetName("Expiry rejected: 1.5 s");
        yield return new TestCaseData(TimeSpan.FromMilliseconds(999)).SetName("Expiry rejected: 0.999 s");
        yield return new TestCaseData(TimeSpan.FromDays(7) + TimeSpan.FromTicks(1)).SetName("Expiry rejected: 7 days and a tick");
        yield return new TestCaseData(TimeSpan.MaxValue).SetName("Expiry rejected: TimeSpan.MaxValue");
    }

    [TestCaseSource(nameof(BadExpiries))]
    public void ExpiryOutOfRangeIsRejected(TimeSpan expiresIn)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Presign(expiresIn, Credentials(Token)))!;
        AssertHelpful(e, "1 second", "604800 seconds");
        Assert.That(e.ParamName, Is.EqualTo("expiresIn"));

        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() =>
            SigV4.Presign(HttpMethod.Get, new Uri("https://example.amazonaws.com/"), expiresIn, Credentials(Token), Generic))!;
        AssertHelpful(e2, "1 second", "604800 seconds");
    }

    [Test]
    public void PresignedUrlParameters()
    {
        var signature = Presign(TimeSpan.FromSeconds(60));

        const string expected =
            "GET\n/\n" +
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request" +
            "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host\n" +
            "host:example.amazonaws.com\n\nhost\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        string sig = Signature(expected, AmzDate, "us-east-1", "service");
        Assert.That(Parameters(signature.QueryParameters!), Is.EquivalentTo(new[]
        {
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request",
            "X-Amz-Date=20150830T123600Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Signature=" + sig,
        }));
        Assert.That(signature.QueryParameters, Does.EndWith("&X-Amz-Signature=" + sig), "X-Amz-Signature comes last");
        Assert.That(signature.HeadersToAdd, Is.Empty);
        Assert.That(signature.Authorization, Is.Null);
    }

    [Test]
    public void PresignUri_S3_IsUnsignedPayloadAndKeepsTheQuery()
    {
        var options = new SigV4Options("s3", "us-east-1") { Clock = new ManualClock(Time) };

        var url = SigV4.Presign(HttpMethod.Get, new Uri("https://my-bucket.s3.us-east-1.amazonaws.com/a%20b?versionId=3"), TimeSpan.FromHours(1), Credentials(), options);

        const string expected =
            "GET\n/a%20b\n" +
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs3%2Faws4_request" +
            "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&versionId=3\n" +
            "host:my-bucket.s3.us-east-1.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD";
        Assert.That(url.GetLeftPart(UriPartial.Path), Is.EqualTo("https://my-bucket.s3.us-east-1.amazonaws.com/a%20b"));
        Assert.That(url.Query, Does.StartWith("?versionId=3&"));
        Assert.That(url.Query, Does.EndWith("&X-Amz-Signature=" + Signature(expected, AmzDate, "us-east-1", "s3")));
    }

    // An EKS authentication token is a presigned STS GetCallerIdentity URL that also signs x-k8s-aws-id.
    [Test]
    public void PresignUri_WithHeaders_SignsThem_EksToken()
    {
        var options = new SigV4Options("sts", "us-east-1") { Clock = new ManualClock(Time) };
        var uri = new Uri("https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15");

        var url = SigV4.Presign(HttpMethod.Get, uri, Headers(("x-k8s-aws-id", "my-cluster")), TimeSpan.FromSeconds(60), Credentials(), options);

        const string expected =
            "GET\n/\n" +
            "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
            "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20150830T123600Z" +
            "&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\n" +
            "host:sts.us-east-1.amazonaws.com\nx-k8s-aws-id:my-cluster\n\nhost;x-k8s-aws-id\n" + EmptyHash;
        Assert.That(url.Query, Does.StartWith("?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
        Assert.That(url.Query, Does.Contain("&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"));
        Assert.That(url.Query, Does.EndWith("&X-Amz-Signature=" + Signature(expected, AmzDate, "us-east-1", "sts")));
        Assert.That(url.Query, Does.Not.Contain("my-cluster"), "a signed header's value is sent as a header, not in the URL");

        // The server accepts the URL with the header, and only with it.
        var verifier = new SigV4Verifier(k => k == AccessKeyId ? Credentials() : null, new SigV4Options("sts", "us-east-1")) { Clock = new ManualClock(Time) };
        var (path, query) = SigV4.SplitPathAndQuery(url);
        var host = ("Host", "sts.us-east-1.amazonaws.com");
        Assert.That(verifier.Verify("GET", path, query, Headers(host, ("x-k8s-aws-id", "my-cluster")), []).IsValid, Is.True);
        Assert.That(verifier.Verify("GET", path, query, Headers(host, ("x-k8s-aws-id", "other-cluster")), []).Error, Is.EqualTo(SigV4VerificationError.SignatureMismatch));
        Assert.That(verifier.Verify("GET", path, query, Headers(host), []).Error, Is.EqualTo(SigV4VerificationError.UnsignedHeader));
    }

    [Test]
    public void PresignUri_WithHeaders_S3UploadSignsContentType()
    {
        var options = new SigV4Options("s3", "us-east-1") { Clock = new ManualClock(Time) };
        var uri = new Uri("https://my-bucket.s3.us-east-1.amazonaws.com/photo.jpg");

        var url = SigV4.Presign(HttpMethod.Put, uri, Headers(("Content-Type", "image/jpeg")), TimeSpan.FromMinutes(10), Credentials(), options);

        const string expected =
            "PUT\n/photo.jpg\n" +
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs3%2Faws4_request" +
            "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=600&X-Amz-SignedHeaders=content-type%3Bhost\n" +
            "content-type:image/jpeg\nhost:my-bucket.s3.us-east-1.amazonaws.com\n\ncontent-type;host\nUNSIGNED-PAYLOAD";
        Assert.That(url.Query, Does.EndWith("&X-Amz-Signature=" + Signature(expected, AmzDate, "us-east-1", "s3")));
    }

    [Test]
    public void PresignUri_HostAmongTheHeaders_IsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => SigV4.Presign(HttpMethod.Get, new Uri("https://example.amazonaws.com/"),
            Headers(("host", "other.example.com")), TimeSpan.FromMinutes(1), Credentials(), Generic))!;
        Assert.That(e.ParamName, Is.EqualTo("headers"));
        AssertHelpful(e, "Host", "comes from the URI");
    }

    [Test]
    public void PresignUri_HeaderWithALineBreak_IsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => SigV4.Presign(HttpMethod.Get, new Uri("https://example.amazonaws.com/"),
            Headers(("x-k8s-aws-id", "a\r\nInjected: yes")), TimeSpan.FromMinutes(1), Credentials(), Generic))!;
        AssertHelpful(e, "x-k8s-aws-id");
    }

    // ------------------------------------------------------------------------------------------------
    // Session token.
    // ------------------------------------------------------------------------------------------------

    [Test]
    public void SessionToken_Header_Signed()
    {
        var signature = SigV4.Sign("GET", "/", "", HostOnly, EmptyHash, Time, Credentials(Token), Generic);

        const string expected = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:" + Token + "\n\n" +
            "host;x-amz-date;x-amz-security-token\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.SignedHeaders, Is.EqualTo("host;x-amz-date;x-amz-security-token"));
        Assert.That(signature.HeadersToAdd, Does.Contain(new KeyValuePair<string, string>("X-Amz-Security-Token", Token)));
        Assert.That(signature.Authorization, Is.EqualTo(Authorization(expected, "host;x-amz-date;x-amz-security-token", AmzDate, "us-east-1", "service")));
    }

    [Test]
    public void SessionToken_Header_AddedAfterSigning()
    {
        var signature = SigV4.Sign("GET", "/", "", HostOnly, EmptyHash, Time, Credentials(Token), new SigV4Options("service", "us-east-1") { SignSessionToken = false });

        const string expected = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.SignedHeaders, Is.EqualTo("host;x-amz-date"));
        Assert.That(signature.HeadersToAdd.Where(h => h.Key == "X-Amz-Security-Token").Select(h => h.Value), Is.EqualTo(new[] { Token }),
            "the token is still sent");
        Assert.That(signature.Authorization, Is.EqualTo(Authorization(expected, "host;x-amz-date", AmzDate, "us-east-1", "service")));
    }

    private const string EncodedToken = "IQoJb3JpZ2luX2VjEXAMPLE%2Btoken%2Fwith%3D%3D";

    [Test]
    public void SessionToken_Query_Signed()
    {
        var signature = Presign(TimeSpan.FromSeconds(60), Credentials(Token));

        const string canonicalQuery =
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request" +
            "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-Security-Token=" + EncodedToken + "&X-Amz-SignedHeaders=host";
        const string expected = "GET\n/\n" + canonicalQuery + "\nhost:example.amazonaws.com\n\nhost\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(Parameters(signature.QueryParameters!), Does.Contain("X-Amz-Security-Token=" + EncodedToken));
        Assert.That(signature.Signature, Is.EqualTo(Signature(expected, AmzDate, "us-east-1", "service")));
    }

    [Test]
    public void SessionToken_Query_AddedAfterSigning()
    {
        var signature = Presign(TimeSpan.FromSeconds(60), Credentials(Token), new SigV4Options("service", "us-east-1") { SignSessionToken = false });

        const string canonicalQuery =
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request" +
            "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host";
        const string expected = "GET\n/\n" + canonicalQuery + "\nhost:example.amazonaws.com\n\nhost\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(Parameters(signature.QueryParameters!), Does.Contain("X-Amz-Security-Token=" + EncodedToken), "the token is still sent");
        Assert.That(signature.Signature, Is.EqualTo(Signature(expected, AmzDate, "us-east-1", "service")));
    }

    [TestCase(SignatureLocation.Header)]
    [TestCase(SignatureLocation.Query)]
    public void RedactedCanonicalRequest_HidesTheToken_AndOnlyIt(SignatureLocation location)
    {
        var signature = location == SignatureLocation.Header
            ? SigV4.Sign("GET", "/", "", HostOnly, EmptyHash, Time, Credentials(Token), Generic)
            : Presign(TimeSpan.FromSeconds(60), Credentials(Token));

        Assert.That(signature.CanonicalRequest, Does.Contain(location == SignatureLocation.Header ? Token : EncodedToken), "the token is signed");
        Assert.That(signature.RedactedCanonicalRequest, Does.Not.Contain(Token).And.Not.Contain(EncodedToken));
        Assert.That(signature.RedactedCanonicalRequest, Is.EqualTo(signature.CanonicalRequest.Replace(location == SignatureLocation.Header ? Token : EncodedToken, "(session token)")));
    }

    [Test]
    public void RedactedCanonicalRequest_WithoutAToken_IsTheCanonicalRequest()
    {
        var signature = SigV4.Sign("GET", "/", "", HostOnly, EmptyHash, Time, Credentials(), Generic);
        Assert.That(signature.RedactedCanonicalRequest, Is.EqualTo(signature.CanonicalRequest));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task SessionToken_SignAsync_AddsTheHeaderOnce(bool signToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://example.amazonaws.com/");
        var options = new SigV4Options("service", "us-east-1") { Clock = new ManualClock(Time), SignSessionToken = signToken };

        await SigV4.SignAsync(request, Credentials(Token), options);
        var signature = await SigV4.SignAsync(request, Credentials(Token), options);

        Assert.That(request.Headers.GetValues("X-Amz-Security-Token"), Is.EqualTo(new[] { Token }));
        Assert.That(signature.SignedHeaders, Is.EqualTo(signToken ? "host;x-amz-date;x-amz-security-token" : "host;x-amz-date"));
    }
}
