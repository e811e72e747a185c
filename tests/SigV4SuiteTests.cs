using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>Every v4 case of AWS's signing test suite, in header and query mode, checked piece by piece.</summary>
public class SigV4SuiteTests
{
    public static IEnumerable<TestCaseData> Cases() =>
        from c in SuiteCase.All("v4")
        from location in new[] { SignatureLocation.Header, SignatureLocation.Query }
        select new TestCaseData(c, location).SetName($"v4/{c.Name} ({location})");

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheSuite(SuiteCase c, SignatureLocation location)
    {
        string prefix = location == SignatureLocation.Header ? "header-" : "query-";
        var signature = c.Sign(location, SigningAlgorithm.SigV4);

        Assert.That(signature.CanonicalRequest, Is.EqualTo(c.Read(prefix + "canonical-request.txt")), "canonical request");
        Assert.That(signature.StringToSign, Is.EqualTo(c.Read(prefix + "string-to-sign.txt")), "string to sign");
        Assert.That(signature.Signature, Is.EqualTo(c.Read(prefix + "signature.txt")), "signature");

        var expected = SuiteCase.ParseRequest(File.ReadAllBytes(Path.Combine(c.Folder, prefix + "signed-request.txt")));
        if (location == SignatureLocation.Header)
        {
            Assert.That(signature.QueryParameters, Is.Null);
            Assert.That(SuiteCase.HeaderMultiset(c.Headers.Concat(signature.HeadersToAdd)), Is.EqualTo(SuiteCase.HeaderMultiset(expected.Headers)), "signed request headers");
        }
        else
        {
            Assert.That(signature.HeadersToAdd, Is.Empty);
            string query = c.Query.Length == 0 ? signature.QueryParameters! : c.Query + "&" + signature.QueryParameters;
            Assert.That(SuiteCase.QuerySet(query), Is.EqualTo(SuiteCase.QuerySet(expected.Query)), "signed request query");
            Assert.That(SuiteCase.HeaderMultiset(c.Headers), Is.EqualTo(SuiteCase.HeaderMultiset(expected.Headers)), "signed request headers");
        }
        Assert.That(expected.Path, Is.EqualTo(c.Path));
    }
}
