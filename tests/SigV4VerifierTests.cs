using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>The server-side verifier: accepts every signed request of the suite and rejects tampered ones, saying why.</summary>
public class SigV4VerifierTests
{
    private sealed record Received(string Method, string Path, string Query, List<KeyValuePair<string, string>> Headers, byte[] Body);

    private static Received SignedRequest(SuiteCase c, SignatureLocation location)
    {
        string file = (location == SignatureLocation.Header ? "header-" : "query-") + "signed-request.txt";
        var r = SuiteCase.ParseRequest(File.ReadAllBytes(Path.Combine(c.Folder, file)));
        return new Received(r.Method, r.Path, r.Query, r.Headers, r.Body);
    }

    // The suite's post-sts-header-after case sends the token unsigned, as the service it models takes it.
    private static SigV4Verifier Verifier(SuiteCase c, DateTimeOffset now, bool? allowUnsignedSessionToken = null) =>
        new(key => key == c.Credentials.AccessKeyId ? c.Credentials : null, new SigV4Options(c.Service, c.Region) { NormalizePath = c.Normalize, DoubleEncodePath = true })
        {
            Clock = new FixedClock(now),
            AllowUnsignedSessionToken = allowUnsignedSessionToken ?? c.OmitSessionToken,
        };

    private static SigV4VerificationResult Verify(SuiteCase c, Received r, DateTimeOffset? now = null) =>
        Verifier(c, now ?? c.Time).Verify(r.Method, r.Path, r.Query, r.Headers, r.Body);

    public static IEnumerable<TestCaseData> Cases() =>
        from suite in new[] { "v4", "v4a" }
        from c in SuiteCase.All(suite)
        from location in new[] { SignatureLocation.Header, SignatureLocation.Query }
        select new TestCaseData(c, location).SetName($"verifies {suite}/{c.Name} ({location})");

    [TestCaseSource(nameof(Cases))]
    public void AcceptsEverySignedRequestOfTheSuite(SuiteCase c, SignatureLocation location)
    {
        var r = SignedRequest(c, location);
        var result = Verify(c, r);
        Assert.That(result.IsValid, Is.True, result.Message);
        Assert.That(result.AccessKeyId, Is.EqualTo("AKIDEXAMPLE"));
        Assert.That(result.ErrorCode, Is.Empty);
        Assert.That(Verifier(c, c.Time).CheckBeforeBody(r.Path, r.Query, r.Headers)?.Message, Is.Null, "nothing but the body and the signature left to check");
    }

    // What a server checks before it reads a body: the same verdict as Verify's for everything that needs no body.
    public static IEnumerable<TestCaseData> HeadFailures()
    {
        var c = Case("get-vanilla");
        var header = SignedRequest(c, SignatureLocation.Header);
        var query = SignedRequest(c, SignatureLocation.Query);
        var unsigned = SuiteCase.ParseRequest(File.ReadAllBytes(Path.Combine(c.Folder, "request.txt")));
        string auth = header.Headers.Single(h => h.Key == "Authorization").Value;
        yield return Head("no signature", new Received(unsigned.Method, unsigned.Path, unsigned.Query, unsigned.Headers, unsigned.Body), c.Time, SigV4VerificationError.MissingAuthentication);
        yield return Head("no Signature part", header with { Headers = Replace(header.Headers, "Authorization", auth[..auth.IndexOf(", Signature=", StringComparison.Ordinal)]) }, c.Time, SigV4VerificationError.IncompleteSignature);
        yield return Head("unknown key", header with { Headers = Replace(header.Headers, "Authorization", auth.Replace("AKIDEXAMPLE", "AKIDUNKNOWN")) }, c.Time, SigV4VerificationError.UnknownAccessKey);
        yield return Head("other region", header with { Headers = Replace(header.Headers, "Authorization", auth.Replace("/us-east-1/", "/eu-west-1/")) }, c.Time, SigV4VerificationError.WrongScope);
        yield return Head("16 minutes old", header, c.Time.AddMinutes(16), SigV4VerificationError.SignatureExpired);
        yield return Head("expired presigned URL", query, c.Time.AddSeconds(3601), SigV4VerificationError.SignatureExpired);
        yield return Head("unsigned x-amz header", header with { Headers = header.Headers.Append(new("X-Amz-Target", "Evil.Action")).ToList() }, c.Time, SigV4VerificationError.UnsignedHeader);
        yield return Head("too many headers", header with { Headers = header.Headers.Concat(Enumerable.Repeat(new KeyValuePair<string, string>("X-Pad", "1"), 300)).ToList() }, c.Time, SigV4VerificationError.RequestTooLarge);

        static TestCaseData Head(string name, Received r, DateTimeOffset now, SigV4VerificationError error) =>
            new TestCaseData(r, now, error).SetName("CheckBeforeBody refuses: " + name);
    }

    [TestCaseSource(nameof(HeadFailures))]
    public void CheckBeforeBodyRefusesWithVerifysVerdict(object received, DateTimeOffset now, SigV4VerificationError error)
    {
        var r = (Received)received;
        var c = Case("get-vanilla");
        var early = Verifier(c, now).CheckBeforeBody(r.Path, r.Query, r.Headers);
        var full = Verify(c, r, now);
        Assert.That(early, Is.Not.Null);
        AssertRejected(early!, error, full.ErrorCode, full.Message);
        Assert.That(early!.Message, Is.EqualTo(full.Message));
    }

    [Test]
    public void CheckBeforeBodyLeavesTheBodyAndTheSignatureToVerify()
    {
        var c = Case("post-x-www-form-urlencoded");
        var r = SignedRequest(c, SignatureLocation.Header);
        var changedBody = r with { Body = "Param1=value2"u8.ToArray() };
        var changedPath = r with { Path = "/tampered" };
        Assert.That(Verifier(c, c.Time).CheckBeforeBody(changedBody.Path, changedBody.Query, changedBody.Headers)?.Message, Is.Null);
        Assert.That(Verifier(c, c.Time).CheckBeforeBody(changedPath.Path, changedPath.Query, changedPath.Headers)?.Message, Is.Null);
        Assert.That(Verify(c, changedBody).Error, Is.EqualTo(SigV4VerificationError.PayloadHashMismatch));
        Assert.That(Verify(c, changedPath).Error, Is.EqualTo(SigV4VerificationError.SignatureMismatch));
    }

    private static SuiteCase Case(string name) => SuiteCase.Load(Path.Combine(SuiteCase.Root, "v4", name));

    private static List<KeyValuePair<string, string>> Replace(List<KeyValuePair<string, string>> headers, string name, string value) =>
        headers.Select(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase) ? new KeyValuePair<string, string>(h.Key, value) : h).ToList();

    private static void AssertRejected(SigV4VerificationResult result, SigV4VerificationError error, string code, string messagePart)
    {
        Assert.That(result.IsValid, Is.False);
        Assert.That(result.Error, Is.EqualTo(error), result.Message);
        Assert.That(result.ErrorCode, Is.EqualTo(code));
        Assert.That(result.Message, Does.Contain(messagePart));
        Assert.That(result.Message, Does.Not.Contain("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
        Assert.That(result.ToString(), Does.Not.Contain("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
    }

    [Test]
    public void ChangedHeaderValueIsASignatureMismatchWithTheServersCanonicalRequest()
    {
        var c = Case("get-header-value-trim");
        var r = SignedRequest(c, SignatureLocation.Header);
        var result = Verify(c, r with { Headers = Replace(r.Headers, "My-Header1", "tampered") });
        AssertRejected(result, SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "does not match the signature you provided");
        Assert.That(result.CanonicalRequest, Does.Contain("my-header1:tampered\n"));
        Assert.That(result.Message, Does.Contain(result.CanonicalRequest!).And.Contain(result.StringToSign!));
    }

    [TestCase(SignatureLocation.Header)]
    [TestCase(SignatureLocation.Query)]
    public void MismatchMessageNeverShowsTheSessionToken(SignatureLocation location)
    {
        var c = Case("get-vanilla-with-session-token");
        string token = c.Credentials.SessionToken!;
        var r = SignedRequest(c, location);
        var result = Verify(c, r with { Path = "/tampered" });
        Assert.That(result.Error, Is.EqualTo(SigV4VerificationError.SignatureMismatch));
        foreach (var text in new[] { result.Message, result.ToString(), result.CanonicalRequest! })
        {
            Assert.That(text, Does.Not.Contain(token).And.Not.Contain(Uri.EscapeDataString(token)));
            Assert.That(text, Does.Contain("(session token)"));
        }
    }

    [Test]
    public void ChangedPathIsRejected()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        AssertRejected(Verify(c, r with { Path = "/other" }), SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "Canonical String");
    }

    [TestCase(SignatureLocation.Header)]
    [TestCase(SignatureLocation.Query)]
    public void ChangedQueryValueIsRejected(SignatureLocation location)
    {
        var c = Case("get-vanilla-query-order-key-case");
        var r = SignedRequest(c, location);
        Assert.That(r.Query, Does.Contain("Param2=value2"));
        AssertRejected(Verify(c, r with { Query = r.Query.Replace("Param2=value2", "Param2=value3") }), SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "Param2=value3");
    }

    [Test]
    public void ChangedBodyWithContentSha256IsAPayloadHashMismatch()
    {
        var c = Case("post-x-www-form-urlencoded");
        var r = SignedRequest(c, SignatureLocation.Header);
        AssertRejected(Verify(c, r with { Body = "Param1=value2"u8.ToArray() }), SigV4VerificationError.PayloadHashMismatch, "InvalidSignatureException", "x-amz-content-sha256");
    }

    [Test]
    public void ChangedBodyWithoutContentSha256IsASignatureMismatch()
    {
        var c = Case("post-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        AssertRejected(Verify(c, r with { Body = "x"u8.ToArray() }), SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "does not match");
    }

    [Test]
    public void ChangedDateIsRejected()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        AssertRejected(Verify(c, r with { Headers = Replace(r.Headers, "X-Amz-Date", "20150830T123700Z") }), SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "20150830T123700Z");
        AssertRejected(Verify(c, r with { Headers = Replace(r.Headers, "X-Amz-Date", "20150831T123600Z") }, c.Time.AddDays(1)), SigV4VerificationError.WrongScope, "InvalidSignatureException", "Date in Credential scope does not match");
    }

    [Test]
    public void AddedUnsignedAmzHeaderIsRejected()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        var headers = r.Headers.Append(new("X-Amz-Target", "Evil.Action")).ToList();
        AssertRejected(Verify(c, r with { Headers = headers }), SigV4VerificationError.UnsignedHeader, "InvalidSignatureException", "X-Amz-Target");
    }

    [Test]
    public void ExpiredPresignedUrlIsRejected()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Query);
        Assert.That(Verify(c, r, c.Time.AddSeconds(3600)).IsValid, Is.True, "valid to the last second");
        AssertRejected(Verify(c, r, c.Time.AddSeconds(3601)), SigV4VerificationError.SignatureExpired, "InvalidSignatureException", "Request has expired");
    }

    [Test]
    public void RequestSixteenMinutesOldIsRejectedFifteenIsNot()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        Assert.That(Verify(c, r, c.Time.AddMinutes(15)).IsValid, Is.True);
        AssertRejected(Verify(c, r, c.Time.AddMinutes(16)), SigV4VerificationError.SignatureExpired, "InvalidSignatureException", "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)");
        AssertRejected(Verify(c, r, c.Time.AddMinutes(-16)), SigV4VerificationError.SignatureExpired, "InvalidSignatureException", "Signature not yet current");
    }

    [Test]
    public void UnknownAccessKeyIsAnUnrecognizedClient()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        var verifier = new SigV4Verifier(_ => null, new SigV4Options("service", "us-east-1")) { Clock = new FixedClock(c.Time) };
        AssertRejected(verifier.Verify(r.Method, r.Path, r.Query, r.Headers, r.Body), SigV4VerificationError.UnknownAccessKey, "UnrecognizedClientException", "security token included in the request is invalid");
    }

    [Test]
    public void WrongSessionTokenIsRejected()
    {
        var c = Case("get-vanilla-with-session-token");
        var r = SignedRequest(c, SignatureLocation.Header);
        AssertRejected(Verify(c, r with { Headers = Replace(r.Headers, "X-Amz-Security-Token", "forged") }), SigV4VerificationError.UnknownAccessKey, "UnrecognizedClientException", "security token");
    }

    [Test]
    public void WrongRegionOrServiceIsAWrongScope()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        var otherRegion = new SigV4Verifier(_ => c.Credentials, new SigV4Options("service", "eu-west-1")) { Clock = new FixedClock(c.Time) };
        AssertRejected(otherRegion.Verify(r.Method, r.Path, r.Query, r.Headers, r.Body), SigV4VerificationError.WrongScope, "InvalidSignatureException", "valid region");
        var otherService = new SigV4Verifier(_ => c.Credentials, new SigV4Options("lambda", "us-east-1")) { Clock = new FixedClock(c.Time) };
        AssertRejected(otherService.Verify(r.Method, r.Path, r.Query, r.Headers, r.Body), SigV4VerificationError.WrongScope, "InvalidSignatureException", "correct service: 'lambda'");
    }

    [Test]
    public void NoSignatureAtAllIsMissingAuthentication()
    {
        var c = Case("get-vanilla");
        var r = SuiteCase.ParseRequest(File.ReadAllBytes(Path.Combine(c.Folder, "request.txt")));
        var result = Verifier(c, c.Time).Verify(r.Method, r.Path, r.Query, r.Headers, r.Body);
        AssertRejected(result, SigV4VerificationError.MissingAuthentication, "MissingAuthenticationTokenException", "Missing Authentication Token");
    }

    [Test]
    public void AuthorizationWithoutSignatureIsIncomplete()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        string auth = r.Headers.Single(h => h.Key == "Authorization").Value;
        var result = Verify(c, r with { Headers = Replace(r.Headers, "Authorization", auth[..auth.IndexOf(", Signature=", StringComparison.Ordinal)]) });
        AssertRejected(result, SigV4VerificationError.IncompleteSignature, "IncompleteSignatureException", "requires 'Signature' parameter");
    }

    [Test]
    public void HostMustBeSigned()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        string auth = r.Headers.Single(h => h.Key == "Authorization").Value;
        var result = Verify(c, r with { Headers = Replace(r.Headers, "Authorization", auth.Replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date")) });
        AssertRejected(result, SigV4VerificationError.UnsignedHeader, "InvalidSignatureException", "'Host' must be a signed header");
    }

    [Test]
    public void VerifiesWhatOurSignerProducesForPresignedS3AndAHeaderSignedPut()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token/with+chars=");
        var now = new DateTimeOffset(2026, 11, 24, 8, 0, 0, TimeSpan.Zero);
        var options = new SigV4Options("s3", "us-west-2") { Clock = new FixedClock(now) };
        var verifier = new SigV4Verifier(k => k == "AKIDEXAMPLE" ? credentials : null, options) { Clock = new FixedClock(now.AddMinutes(4)) };

        var url = SigV4.Presign(HttpMethod.Get, new Uri("https://bucket.s3.us-west-2.amazonaws.com/a%20key/x.txt?versionId=3"), TimeSpan.FromMinutes(5), credentials, options);
        var (path, query) = SigV4.SplitPathAndQuery(url);
        var host = new List<KeyValuePair<string, string>> { new("Host", "bucket.s3.us-west-2.amazonaws.com") };
        var result = verifier.Verify("GET", path, query, host, []);
        Assert.That(result.IsValid, Is.True, result.Message);
        Assert.That(verifier.Verify("PUT", path, query, host, []).Error, Is.EqualTo(SigV4VerificationError.SignatureMismatch), "a URL presigned for GET does not allow PUT");

        using var put = new HttpRequestMessage(HttpMethod.Put, "https://bucket.s3.us-west-2.amazonaws.com/a%20key/x.txt") { Content = new StringContent("hello") };
        SigV4.SignAsync(put, credentials, options).AsTask().GetAwaiter().GetResult();
        var sent = new List<KeyValuePair<string, string>>(host);
        foreach (var h in put.Headers.NonValidated) sent.Add(new(h.Key, h.Value.ToString()));
        foreach (var h in put.Content!.Headers.NonValidated) sent.Add(new(h.Key, h.Value.ToString()));
        var (putPath, putQuery) = SigV4.SplitPathAndQuery(put.RequestUri!);
        var putResult = verifier.Verify("PUT", putPath, putQuery, sent, "hello"u8);
        Assert.That(putResult.IsValid, Is.True, putResult.Message);
        Assert.That(verifier.Verify("PUT", putPath, putQuery, sent, "hellO"u8).Error, Is.EqualTo(SigV4VerificationError.PayloadHashMismatch));
    }

    // A signature covers the host it was made for: a server that names its hosts refuses one made for another.
    [TestCase("staging.example.com", null, true)]                        // no list: any host
    [TestCase("api.example.com:8443", "API.example.com:8443", true)]     // no regard to case
    [TestCase("api.example.com", "api.example.com.", true)]              // nor to a trailing dot
    [TestCase("api.example.com", "api.example.com:443", true)]           // nor to a default port
    [TestCase("127.0.0.1:8080", "127.0.0.1:8080", true)]
    [TestCase("[::1]:8080", "[::1]:8080", true)]
    [TestCase("staging.example.com", "api.example.com", false)]
    [TestCase("api.example.com:8443", "api.example.com", false)]         // another port is another server
    public void AllowedHostsRefuseARequestSignedForAnotherServer(string signedFor, string? allowed, bool valid)
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var now = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
        var options = new SigV4Options("execute-api", "us-east-1") { Clock = new FixedClock(now) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{signedFor}/orders?id=7");
        SigV4.SignAsync(request, credentials, options).AsTask().GetAwaiter().GetResult();
        var headers = new List<KeyValuePair<string, string>> { new("Host", request.RequestUri!.Authority) };
        foreach (var h in request.Headers.NonValidated) headers.Add(new(h.Key, h.Value.ToString()));
        var verifier = new SigV4Verifier(_ => credentials, options) { Clock = new FixedClock(now), AllowedHosts = allowed is null ? null : [allowed, "other.example.com"] };

        var result = verifier.Verify("GET", "/orders", "id=7", headers, []);

        Assert.That(result.IsValid, Is.EqualTo(valid), result.Message);
        if (valid) return;
        Assert.That(result.Error, Is.EqualTo(SigV4VerificationError.WrongHost));
        Assert.That(result.Message, Is.EqualTo($"The request is for host '{request.RequestUri.Authority}', which this server does not answer to."));
        Assert.That(result.Message, Does.Not.Contain("other.example.com"), "the hosts it answers to are not told to whoever asks");
    }

    [TestCase("https://api.example.com")]
    [TestCase("api.example.com/")]
    [TestCase("api.example.com/path")]
    [TestCase("user@api.example.com")]
    [TestCase(" ")]
    public void AllowedHostsMustBeHosts(string bad)
    {
        var e = Assert.Throws<ArgumentException>(() => _ = new SigV4Verifier(_ => null, new SigV4Options("s", "r")) { AllowedHosts = ["api.example.com", bad] })!;
        Assert.That(e.Message, Does.Contain("which is not a host or host:port such as api.example.com, localhost:8080 or [::1]:8080 (no scheme, no path)"));
        var empty = Assert.Throws<ArgumentException>(() => _ = new SigV4Verifier(_ => null, new SigV4Options("s", "r")) { AllowedHosts = [] })!;
        Assert.That(empty.Message, Does.Contain("AllowedHosts must name at least one host"));
        var kept = new SigV4Verifier(_ => null, new SigV4Options("s", "r")) { AllowedHosts = ["API.example.com:8443"] }.AllowedHosts;
        Assert.That(kept, Is.EqualTo(new[] { "API.example.com:8443" }), "read back as given");
        Assert.That(kept, Is.Not.InstanceOf<HashSet<string>>(), "not the verifier's own lookup set");
    }

    // The query is verified exactly as received: a leading '?' is part of the first name, on both sides.
    [Test]
    public void QueryStartingWithQuestionMarkIsVerifiedAsSent()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var time = new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);
        var options = new SigV4Options("lambda", "us-east-1");
        var verifier = new SigV4Verifier(k => k == "AKIDEXAMPLE" ? credentials : null, options) { Clock = new FixedClock(time) };
        var host = new List<KeyValuePair<string, string>> { new("Host", "lambda.us-east-1.amazonaws.com") };
        List<KeyValuePair<string, string>> Sent(SigV4Signature signature) => [.. host, .. signature.HeadersToAdd];
        const string path = "/2015-03-31/functions/f/invocations";

        var withMark = SigV4.Sign("POST", path, "?a=1", host, SigV4.EmptyPayloadHash, time, credentials, options);
        Assert.That(verifier.Verify("POST", path, "?a=1", Sent(withMark), []).IsValid, Is.True);
        AssertRejected(verifier.Verify("POST", path, "a=1", Sent(withMark), []), SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "\na=1\n");

        var withoutMark = SigV4.Sign("POST", path, "a=1", host, SigV4.EmptyPayloadHash, time, credentials, options);
        AssertRejected(verifier.Verify("POST", path, "?a=1", Sent(withoutMark), []), SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "\n%3Fa=1\n");
    }

    [TestCase("host;X-Amz-Date", TestName = "SignedHeaders with upper case is refused")]
    [TestCase("x-amz-date;host", TestName = "SignedHeaders out of order is refused")]
    [TestCase("host;host;x-amz-date", TestName = "SignedHeaders with a repeated name is refused")]
    [TestCase("host;;x-amz-date", TestName = "SignedHeaders with an empty name is refused")]
    public void SignedHeadersMustBeLowercaseAndSorted(string signedHeaders)
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        string auth = r.Headers.Single(h => h.Key == "Authorization").Value;
        var result = Verify(c, r with { Headers = Replace(r.Headers, "Authorization", auth.Replace("SignedHeaders=host;x-amz-date", "SignedHeaders=" + signedHeaders)) });
        AssertRejected(result, SigV4VerificationError.IncompleteSignature, "IncompleteSignatureException", "must be the signed header names in lower case, sorted");
    }

    // ------------------------------------------------------------------------------------------------------------
    // Strict parsing: what a lenient reader would let through.
    // ------------------------------------------------------------------------------------------------------------

    [Test]
    public void TwoAuthorizationHeadersAreRefused()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        string auth = r.Headers.Single(h => h.Key == "Authorization").Value;
        AssertRejected(Verify(c, r with { Headers = [.. r.Headers, new("Authorization", auth)] }), SigV4VerificationError.IncompleteSignature,
            "IncompleteSignatureException", "more than one Authorization header");
    }

    [TestCase("Credential", "Credential=AKIDOTHER/20150830/us-east-1/service/aws4_request")]
    [TestCase("SignedHeaders", "SignedHeaders=host")]
    [TestCase("Signature", "Signature=0000000000000000000000000000000000000000000000000000000000000000")]
    public void RepeatedAuthorizationComponentIsRefused(string name, string extra)
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Header);
        string auth = r.Headers.Single(h => h.Key == "Authorization").Value;
        foreach (var changed in new[] { auth + ", " + extra, auth.Replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256 " + extra + ", ") })
            AssertRejected(Verify(c, r with { Headers = Replace(r.Headers, "Authorization", changed) }), SigV4VerificationError.IncompleteSignature,
                "IncompleteSignatureException", $"'{name}' parameter more than once");
    }

    [Test]
    public void UnsignedSessionTokenHeaderIsRefusedUnlessAllowed()
    {
        var c = Case("post-sts-header-after");
        var r = SignedRequest(c, SignatureLocation.Header);
        Assert.That(r.Headers.Any(h => h.Key == "X-Amz-Security-Token"), Is.True);
        AssertRejected(Verifier(c, c.Time, allowUnsignedSessionToken: false).Verify(r.Method, r.Path, r.Query, r.Headers, r.Body),
            SigV4VerificationError.UnsignedHeader, "InvalidSignatureException", "'X-Amz-Security-Token' was sent but is not signed");
        Assert.That(Verifier(c, c.Time, allowUnsignedSessionToken: true).Verify(r.Method, r.Path, r.Query, r.Headers, r.Body).IsValid, Is.True);
    }

    [Test]
    public void PresignedUrlWithATokenAddedAfterSigningIsRefusedUnlessAllowed()
    {
        var c = Case("post-sts-header-after");
        var r = SignedRequest(c, SignatureLocation.Query);
        AssertRejected(Verifier(c, c.Time, allowUnsignedSessionToken: false).Verify(r.Method, r.Path, r.Query, r.Headers, r.Body),
            SigV4VerificationError.SignatureMismatch, "InvalidSignatureException", "does not match");
        Assert.That(Verifier(c, c.Time, allowUnsignedSessionToken: true).Verify(r.Method, r.Path, r.Query, r.Headers, r.Body).IsValid, Is.True);
    }

    [TestCase("&X-Amz-Expires=604800", "X-Amz-Expires appears more than once", TestName = "Presigned: a second X-Amz-Expires is refused")]
    [TestCase("&x-amz-expires=604800", "X-Amz-Expires appears more than once", TestName = "Presigned: a second x-amz-expires (other case) is refused")]
    [TestCase("&X%2DAmz-Date=20150830T123600Z", "X-Amz-Date appears more than once", TestName = "Presigned: a second X-Amz-Date (encoded name) is refused")]
    [TestCase("&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request", "X-Amz-Credential appears more than once", TestName = "Presigned: a second X-Amz-Credential is refused")]
    [TestCase("&X-Amz-Signature=0000", "X-Amz-Signature appears more than once", TestName = "Presigned: a second X-Amz-Signature is refused")]
    [TestCase("&X-Amz-Security-Token=forged", "X-Amz-Security-Token", TestName = "Presigned: an X-Amz-Security-Token is refused for credentials without one")]
    public void PresignedQueryWithARepeatedParameterIsRefused(string extra, string message)
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Query);
        var result = Verify(c, r with { Query = r.Query + extra });
        Assert.That(result.IsValid, Is.False);
        Assert.That(result.Message, Does.Contain(message));
    }

    [Test]
    public void PresignedSignatureNameInAnotherCaseIsRefused()
    {
        var c = Case("get-vanilla");
        var r = SignedRequest(c, SignatureLocation.Query);
        Assert.That(r.Query, Does.Contain("&X-Amz-Signature="));
        AssertRejected(Verify(c, r with { Query = r.Query.Replace("&X-Amz-Signature=", "&x-amz-signature=") }), SigV4VerificationError.IncompleteSignature,
            "IncompleteSignatureException", "must be spelled X-Amz-Signature");
    }

    [TestCase("v4", SignatureLocation.Header)]
    [TestCase("v4", SignatureLocation.Query)]
    [TestCase("v4a", SignatureLocation.Header)]
    [TestCase("v4a", SignatureLocation.Query)]
    public void UppercaseSignatureHexIsRefused(string suite, SignatureLocation location)
    {
        var c = SuiteCase.Load(Path.Combine(SuiteCase.Root, suite, "get-vanilla"));
        var r = SignedRequest(c, location);
        Assert.That(Verify(c, r).IsValid, Is.True);
        Received upper;
        if (location == SignatureLocation.Header)
        {
            string auth = r.Headers.Single(h => h.Key == "Authorization").Value;
            int at = auth.IndexOf("Signature=", StringComparison.Ordinal) + "Signature=".Length;
            upper = r with { Headers = Replace(r.Headers, "Authorization", auth[..at] + auth[at..].ToUpperInvariant()) };
        }
        else
        {
            int at = r.Query.IndexOf("X-Amz-Signature=", StringComparison.Ordinal) + "X-Amz-Signature=".Length;
            upper = r with { Query = r.Query[..at] + r.Query[at..].ToUpperInvariant() };
        }
        AssertRejected(Verify(c, upper), SigV4VerificationError.IncompleteSignature, "IncompleteSignatureException", "must be lowercase hex");
    }

    // ------------------------------------------------------------------------------------------------------------
    // Size: limits checked first, and large requests verified in any order.
    // ------------------------------------------------------------------------------------------------------------

    private static (List<KeyValuePair<string, string>> Headers, string Query) LargeSignedRequest(AwsCredentials credentials, int count, int seed)
    {
        var random = new Random(seed);
        var headers = Enumerable.Range(0, count).Select(i => new KeyValuePair<string, string>("X-Amz-Meta-" + (i % 97), "v" + i)).OrderBy(_ => random.Next()).ToList();
        string query = string.Join('&', Enumerable.Range(0, count).Select(i => "p" + (i % 89) + "=" + i).OrderBy(_ => random.Next()));
        headers.Insert(0, new("Host", "example.amazonaws.com"));
        var signature = SigV4.Sign("GET", "/", query, headers, SigV4.EmptyPayloadHash, Time, credentials, new SigV4Options("service", "us-east-1"));
        return ([.. headers, .. signature.HeadersToAdd], query);
    }

    private static readonly DateTimeOffset Time = new(2015, 8, 30, 12, 36, 0, TimeSpan.Zero);

    [Test]
    public void LargeRequestInRandomOrderVerifiesWithinRaisedLimits_AndIsRefusedWithinTheDefaults()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var (headers, query) = LargeSignedRequest(credentials, 3000, 1);
        var roomy = new SigV4Verifier(_ => credentials, new SigV4Options("service", "us-east-1"))
        {
            Clock = new FixedClock(Time), MaxHeaderCount = 10_000, MaxRequestHeadLength = 1 << 20,
        };
        var result = roomy.Verify("GET", "/", query, headers, []);
        Assert.That(result.IsValid, Is.True, result.Message);
        // Names in reverse order; the values of each name keep theirs (their order is signed).
        headers = headers.OrderByDescending(h => h.Key, StringComparer.OrdinalIgnoreCase).ToList();
        Assert.That(roomy.Verify("GET", "/", query, headers, []).IsValid, Is.True, "the order names arrive in does not matter");
        Assert.That(roomy.Verify("GET", "/", query.Replace("=17&", "=18&"), headers, []).Error, Is.EqualTo(SigV4VerificationError.SignatureMismatch));

        var strict = new SigV4Verifier(_ => credentials, new SigV4Options("service", "us-east-1")) { Clock = new FixedClock(Time) };
        var tooMany = strict.Verify("GET", "/", query, headers, []);
        AssertRejected(tooMany, SigV4VerificationError.RequestTooLarge, "RequestHeaderSectionTooLarge", "3003 headers, at most 200");
        var tooLong = strict.Verify("GET", "/", query + "&pad=" + new string('x', 70_000), [new("Host", "example.amazonaws.com")], []);
        AssertRejected(tooLong, SigV4VerificationError.RequestTooLarge, "RequestHeaderSectionTooLarge", "at most 65536");
    }

    [Test]
    public void LimitsBelowOneAreOutOfRange()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new SigV4Verifier(_ => null, new SigV4Options("service", "us-east-1")) { MaxHeaderCount = 0 })!;
        Assert.That(e.Message, Does.Contain("at least 1"));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new SigV4Verifier(_ => null, new SigV4Options("service", "us-east-1")) { MaxRequestHeadLength = -1 });
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}

public class SigV4VerifierMessageTests
{
    [TestCase("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=2015%0D%0AFAKE-LOG-LINE&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00")]
    [TestCase("X-Amz-Algorithm=AWS4%0AFAKE&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00")]
    [TestCase("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=6%0D%0A0&X-Amz-SignedHeaders=host&X-Amz-Signature=00")]
    public void TextTheRequestGaveIsQuotedWithoutLineBreaksAndClipped(string query)
    {
        var verifier = new SigV4Verifier(_ => new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), new SigV4Options("service", "us-east-1"));
        var result = verifier.Verify("GET", "/", query, [new("Host", "example.amazonaws.com")], []);

        Assert.That(result.IsValid, Is.False);
        Assert.That(result.Message, Does.Not.Contain("\r").And.Not.Contain("\n"));
        Assert.That(result.Message, Does.Contain("\\u000").Or.Contain("expired").Or.Contain("Signature"), result.Message);
        Assert.That(result.Message.Length, Is.LessThan(600));
    }
}
