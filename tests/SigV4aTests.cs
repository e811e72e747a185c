using System.Security.Cryptography;
using System.Text.Json;
using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>SigV4a: the v4a half of AWS's suite, key derivation, and bad input.</summary>
public class SigV4aTests
{
    public static IEnumerable<TestCaseData> Cases() =>
        from c in SuiteCase.All("v4a")
        from location in new[] { SignatureLocation.Header, SignatureLocation.Query }
        select new TestCaseData(c, location).SetName($"v4a/{c.Name} ({location})");

    private static ECPoint SuitePublicKey(SuiteCase c)
    {
        using var json = JsonDocument.Parse(c.Read("public-key.json"));
        return new ECPoint
        {
            X = Convert.FromHexString(json.RootElement.GetProperty("X").GetString()!),
            Y = Convert.FromHexString(json.RootElement.GetProperty("Y").GetString()!),
        };
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheSuite(SuiteCase c, SignatureLocation location)
    {
        string prefix = location == SignatureLocation.Header ? "header-" : "query-";
        var signature = c.Sign(location, SigningAlgorithm.SigV4a);

        Assert.That(signature.CanonicalRequest, Is.EqualTo(c.Read(prefix + "canonical-request.txt")), "canonical request");
        Assert.That(signature.StringToSign, Is.EqualTo(c.Read(prefix + "string-to-sign.txt")), "string to sign");

        var publicKey = SuitePublicKey(c);
        Assert.That(SigV4.VerifySigV4a(signature.StringToSign, signature.Signature, publicKey), Is.True, "our signature verifies under public-key.json");
        Assert.That(SigV4.VerifySigV4a(signature.StringToSign, c.Read(prefix + "signature.txt"), publicKey), Is.True, "the suite's example signature verifies");
        // DER (r, s): 0x30, length, two INTEGERs of up to 33 bytes; shorter when r or s has leading zero bytes.
        Assert.That(signature.Signature, Does.StartWith("30").And.Length.LessThanOrEqualTo(144).And.Match("^[0-9a-f]+$"));

        var expected = SuiteCase.ParseRequest(File.ReadAllBytes(Path.Combine(c.Folder, prefix + "signed-request.txt")));
        if (location == SignatureLocation.Header)
        {
            string expectedAuthorization = expected.Headers.Single(h => h.Key == "Authorization").Value;
            string ours = signature.Authorization!;
            Assert.That(ours[..ours.LastIndexOf("Signature=", StringComparison.Ordinal)],
                Is.EqualTo(expectedAuthorization[..expectedAuthorization.LastIndexOf("Signature=", StringComparison.Ordinal)]), "Credential= and SignedHeaders= exact");
            var withoutSignature = c.Headers.Concat(signature.HeadersToAdd).Where(h => h.Key != "Authorization");
            Assert.That(SuiteCase.HeaderMultiset(withoutSignature), Is.EqualTo(SuiteCase.HeaderMultiset(expected.Headers.Where(h => h.Key != "Authorization"))));
        }
        else
        {
            string query = c.Query.Length == 0 ? signature.QueryParameters! : c.Query + "&" + signature.QueryParameters;
            static string[] WithoutSignature(string q) => SuiteCase.QuerySet(q).Where(p => !p.StartsWith("x-amz-signature=", StringComparison.Ordinal)).ToArray();
            Assert.That(WithoutSignature(query), Is.EqualTo(WithoutSignature(expected.Query)));
        }
    }

    [Test]
    public void SuiteFoldersWithoutExpectationsAreTheTwoUnusedOnes()
    {
        var all = Directory.GetDirectories(Path.Combine(SuiteCase.Root, "v4a")).Select(Path.GetFileName).ToArray();
        var run = SuiteCase.All("v4a").Select(c => c.Name).ToArray();
        Assert.That(run, Has.Length.EqualTo(38));
        Assert.That(all.Except(run), Is.EquivalentTo(new[] { "get-vanilla-query-order-key", "get-vanilla-query-order-value" }));
    }

    [Test]
    public void KeyDerivationKnownAnswer()
    {
        using var credentials = new AwsCredentials("AKISORANDOMAASORANDOM", "q+jcrXGc+0zWN6uzclKVhvMmUsIfRPa4rlRandom");
        var parameters = credentials.GetSigV4aKey().ExportParameters(includePrivateParameters: true);
        Assert.That(Convert.ToHexStringLower(parameters.D!), Is.EqualTo("7fd3bd010c0d9c292141c2b77bfbde1042c92e6836fff749d1269ec890fca1bd"));
        var q = SigV4.GetSigV4aPublicKey(credentials);
        Assert.That(Convert.ToHexStringLower(q.X!), Is.EqualTo("15d242ceebf8d8169fd6a8b5a746c41140414c3b07579038da06af89190fffcb"));
        Assert.That(Convert.ToHexStringLower(q.Y!), Is.EqualTo("0515242cedd82e94799482e4c0514b505afccf2c0c98d6a553bf539f424c5ec0"));
    }

    [Test]
    public void PublicKeyOfTheSuiteCredentialsMatchesEveryCase()
    {
        using var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var q = SigV4.GetSigV4aPublicKey(credentials);
        foreach (var c in SuiteCase.All("v4a"))
        {
            var expected = SuitePublicKey(c);
            Assert.That(q.X, Is.EqualTo(expected.X), c.Name);
            Assert.That(q.Y, Is.EqualTo(expected.Y), c.Name);
        }
    }

    [Test]
    public void TamperedStringToSignDoesNotVerify()
    {
        var c = SuiteCase.All("v4a").First(x => x.Name == "get-vanilla");
        var signature = c.Sign(SignatureLocation.Header, SigningAlgorithm.SigV4a);
        var publicKey = SuitePublicKey(c);
        Assert.That(SigV4.VerifySigV4a(signature.StringToSign + "x", signature.Signature, publicKey), Is.False);
        Assert.That(SigV4.VerifySigV4a(signature.StringToSign, "zz" + signature.Signature, publicKey), Is.False, "not hex");
        Assert.That(SigV4.VerifySigV4a(signature.StringToSign, "3006020101020101", publicKey), Is.False, "wrong DER");
    }

    [TestCase("us-east-1,us-west-2")]
    [TestCase("*")]
    public void RegionSetsAreSignedAsGiven(string regionSet)
    {
        using var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var options = new SigV4Options("s3", regionSet) { Algorithm = SigningAlgorithm.SigV4a };
        var headers = new[] { new KeyValuePair<string, string>("Host", "mrap.accesspoint.s3-global.amazonaws.com") };
        var signature = SigV4.Sign("GET", "/key", "", headers, SigV4.UnsignedPayload, DateTimeOffset.UnixEpoch, credentials, options);
        Assert.That(signature.HeadersToAdd, Does.Contain(new KeyValuePair<string, string>("X-Amz-Region-Set", regionSet)));
        Assert.That(signature.CanonicalRequest, Does.Contain("\nx-amz-region-set:" + regionSet + "\n"));
        Assert.That(signature.CredentialScope, Is.EqualTo("19700101/s3/aws4_request"));
        Assert.That(signature.Authorization, Does.StartWith("AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/19700101/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-region-set, Signature=30"));
        Assert.That(SigV4.VerifySigV4a(signature.StringToSign, signature.Signature, SigV4.GetSigV4aPublicKey(credentials)), Is.True);
    }

    [TestCase("", "must not be empty")]
    [TestCase("us-east-1, us-west-2", "space")]
    [TestCase("us-east-1,,us-west-2", "empty entry")]
    [TestCase("us-east-1,", "empty entry")]
    public void BadRegionSetsAreRejected(string regionSet, string expected)
    {
        using var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var headers = new[] { new KeyValuePair<string, string>("Host", "example.amazonaws.com") };
        var e = Assert.Throws<ArgumentException>(() =>
            SigV4.Sign("GET", "/", "", headers, SigV4.EmptyPayloadHash, DateTimeOffset.UnixEpoch, credentials,
                new SigV4Options("service", regionSet) { Algorithm = SigningAlgorithm.SigV4a }))!;
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.Message, Does.Contain("us-east-1,us-west-2").Or.Contain("such as"), "says what would be right");
        Assert.That(e.Message, Does.Not.Contain(credentials.SecretAccessKey));
    }

    [Test]
    public void CrLfInAHeaderIsRejectedUnderSigV4aToo()
    {
        using var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var headers = new[] { new KeyValuePair<string, string>("Host", "example.amazonaws.com"), new("X-Custom", "a\r\nX-Evil: 1") };
        var e = Assert.Throws<ArgumentException>(() => SigV4.Sign("GET", "/", "", headers, SigV4.EmptyPayloadHash, DateTimeOffset.UnixEpoch,
            credentials, new SigV4Options("service", "us-east-1") { Algorithm = SigningAlgorithm.SigV4a }))!;
        Assert.That(e.Message, Does.Contain("X-Custom").And.Contain("CR or LF"));
    }

    [Test]
    public void DerivedKeyIsNeverShownAndIsDisposedWithItsOwner()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var key = credentials.GetSigV4aKey();
        string d = Convert.ToHexString(key.ExportParameters(true).D!);
        Assert.That(credentials.ToString(), Does.Not.Contain(d).IgnoreCase.And.Not.Contain(credentials.SecretAccessKey));
        credentials.Dispose();
        Assert.Throws<ObjectDisposedException>(() => key.ExportParameters(true));
        var again = credentials.GetSigV4aKey();
        Assert.That(again, Is.Not.SameAs(key), "a disposed key is not reused: a fresh one is derived");
    }
}
