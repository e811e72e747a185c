using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>The signing time and the per-credentials signing-key cache: day changes, time zones, many scopes,
/// many threads.</summary>
public class SigningKeyCacheTests
{
    private static SigV4Signature SignAt(DateTimeOffset time, AwsCredentials credentials, string region = "us-east-1", string service = "service", string path = "/") =>
        SigV4.Sign("GET", path, "", Headers(("Host", "example.amazonaws.com")), EmptyHash, time, credentials, new SigV4Options(service, region));

    private static string CanonicalRequest(string amzDate, string path = "/") =>
        $"GET\n{path}\n\nhost:example.amazonaws.com\nx-amz-date:{amzDate}\n\nhost;x-amz-date\n{EmptyHash}";

    [Test]
    public void MidnightSwitchesTheKeyDay()
    {
        var shared = Credentials();
        var lastMoment = new DateTimeOffset(2015, 8, 30, 23, 59, 59, 999, TimeSpan.Zero);
        var nextDay = new DateTimeOffset(2015, 8, 31, 0, 0, 0, 0, TimeSpan.Zero);

        var before = SignAt(lastMoment, shared);
        var after = SignAt(nextDay, shared);
        var beforeAgain = SignAt(lastMoment, shared);

        Assert.That(before.AmzDate, Is.EqualTo("20150830T235959Z"), "milliseconds are truncated, never rounded into the next day");
        Assert.That(before.CredentialScope, Is.EqualTo("20150830/us-east-1/service/aws4_request"));
        Assert.That(after.AmzDate, Is.EqualTo("20150831T000000Z"));
        Assert.That(after.CredentialScope, Is.EqualTo("20150831/us-east-1/service/aws4_request"));

        Assert.That(before.Signature, Is.EqualTo(Signature(CanonicalRequest("20150830T235959Z"), "20150830T235959Z", "us-east-1", "service")));
        Assert.That(after.Signature, Is.EqualTo(Signature(CanonicalRequest("20150831T000000Z"), "20150831T000000Z", "us-east-1", "service")));
        Assert.That(after.Signature, Is.EqualTo(SignAt(nextDay, Credentials()).Signature), "same as with a fresh credentials object");
        Assert.That(before.Signature, Is.EqualTo(SignAt(lastMoment, Credentials()).Signature));
        Assert.That(beforeAgain.Signature, Is.EqualTo(before.Signature));
    }

    [Test]
    public void NonUtcTimeIsSignedAsItsUtcInstant()
    {
        var plusTwo = new DateTimeOffset(2015, 8, 31, 1, 59, 59, TimeSpan.FromHours(2)); // 2015-08-30T23:59:59Z
        var minusFive = new DateTimeOffset(2015, 8, 30, 20, 0, 0, TimeSpan.FromHours(-5)); // 2015-08-31T01:00:00Z

        var a = SignAt(plusTwo, Credentials());
        var b = SignAt(minusFive, Credentials());

        Assert.That(a.AmzDate, Is.EqualTo("20150830T235959Z"));
        Assert.That(a.CredentialScope, Is.EqualTo("20150830/us-east-1/service/aws4_request"));
        Assert.That(a.Authorization, Is.EqualTo(SignAt(plusTwo.ToUniversalTime(), Credentials()).Authorization));
        Assert.That(b.AmzDate, Is.EqualTo("20150831T010000Z"));
        Assert.That(b.CredentialScope, Is.EqualTo("20150831/us-east-1/service/aws4_request"));
        Assert.That(b.Signature, Is.EqualTo(Signature(CanonicalRequest("20150831T010000Z"), "20150831T010000Z", "us-east-1", "service")));
    }

    // More (day, region, service) scopes than the cache holds, visited in turn and again: every signature still
    // uses its own scope's key.
    [Test]
    public void ManyScopesThroughOneCredentialsObject()
    {
        var shared = Credentials();
        string[] regions = ["us-east-1", "eu-west-1", "ap-south-1"];
        string[] services = ["lambda", "sqs", "service"];
        string[] dates = ["20150830T120000Z", "20150831T120000Z"];
        for (int round = 0; round < 2; round++)
            foreach (var date in dates)
                foreach (var region in regions)
                    foreach (var service in services)
                    {
                        var time = DateTimeOffset.ParseExact(date, "yyyyMMdd'T'HHmmss'Z'", null, System.Globalization.DateTimeStyles.AssumeUniversal);
                        Assert.That(SignAt(time, shared, region, service).Signature, Is.EqualTo(Signature(CanonicalRequest(date), date, region, service)),
                            $"{date} {region} {service} round {round}");
                    }
    }

    [Test]
    public void ManyThreadsShareOneCredentialsObject()
    {
        var cases = (
            from day in new[] { 29, 30, 31 }
            from region in new[] { "us-east-1", "eu-west-1", "ap-south-1" }
            from service in new[] { "lambda", "sqs", "service" }
            from path in new[] { "/a", "/b" }
            select (Time: new DateTimeOffset(2015, 8, day, 12, 0, 0, TimeSpan.Zero), AmzDate: $"201508{day}T120000Z", Region: region, Service: service, Path: path)).ToArray();
        var expected = cases.Select(c => Authorization(CanonicalRequest(c.AmzDate, c.Path), "host;x-amz-date", c.AmzDate, c.Region, c.Service)).ToArray();
        var single = Credentials();
        var singleThread = cases.Select(c => SignAt(c.Time, single, c.Region, c.Service, c.Path).Authorization).ToArray();
        Assert.That(singleThread, Is.EqualTo(expected));

        var shared = Credentials();
        var results = new string?[2000];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            var c = cases[i * 7 % cases.Length]; // neighbouring iterations use different scopes
            results[i] = SignAt(c.Time, shared, c.Region, c.Service, c.Path).Authorization;
        });

        for (int i = 0; i < results.Length; i++)
            Assert.That(results[i], Is.EqualTo(singleThread[i * 7 % cases.Length]), $"iteration {i}");
    }
}
