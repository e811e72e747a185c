using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>The canonical query beyond AWS's suite: decode what is on the wire, encode each name and value
/// (RFC 3986), then sort by encoded name and value.</summary>
public class CanonicalQueryTests
{
    private static string CanonicalQuery(string wireQuery) =>
        Line(SigV4.Sign("GET", "/", wireQuery, Headers(("Host", "example.amazonaws.com")), EmptyHash, Time, Credentials(),
            new SigV4Options("service", "us-east-1")).CanonicalRequest, 2);

    [TestCase("b=2&a=3&b=1", "a=3&b=1&b=2", TestName = "Query: repeated names are kept and sorted by value")]
    [TestCase("acl", "acl=", TestName = "Query: a name without a value becomes name=")]
    [TestCase("acl=", "acl=", TestName = "Query: a name with an empty value")]
    [TestCase("versions&prefix=a&delimiter", "delimiter=&prefix=a&versions=", TestName = "Query: several names without values")]
    [TestCase("q=a+b", "q=a%20b", TestName = "Query: '+' reads as a space")]
    [TestCase("q=a%2Bb", "q=a%2Bb", TestName = "Query: %2B stays a plus")]
    [TestCase("q=a b", "q=a%20b", TestName = "Query: a raw space")]
    [TestCase("q=%c3%a9&r=%2f%3a", "q=%C3%A9&r=%2F%3A", TestName = "Query: lowercase escapes become uppercase")]
    [TestCase("q=%7E%41", "q=~A", TestName = "Query: escaped unreserved characters are decoded")]
    [TestCase("q=!'()*", "q=%21%27%28%29%2A", TestName = "Query: !'()* are encoded")]
    [TestCase("q=a/b:c", "q=a%2Fb%3Ac", TestName = "Query: slash and colon are encoded")]
    [TestCase("q=\u00e9", "q=%C3%A9", TestName = "Query: raw non-ASCII is encoded as UTF-8")]
    [TestCase("q=a=b", "q=a%3Db", TestName = "Query: '=' inside a value")]
    // '[' (0x5B) sorts after 'A' (0x41) but its encoding "%5B" sorts before it: sorting before encoding gives A=1 first.
    [TestCase("A=1&%5B=2", "%5B=2&A=1", TestName = "Query: sorted after encoding (names)")]
    [TestCase("k=~&k=%C3%A9", "k=%C3%A9&k=~", TestName = "Query: sorted after encoding (values)")]
    // Sorted by name, then by value: sorting whole "name=value" strings would put a-b=1 first ('-' < '=').
    [TestCase("a-b=1&a=2&a=1", "a=1&a=2&a-b=1", TestName = "Query: sorted by name, then by value")]
    [TestCase("b=1&B=2&a=3", "B=2&a=3&b=1", TestName = "Query: ordinal sort, uppercase first")]
    // The query is what follows the first '?': in ".../invocations??a=1" it is "?a=1", whose first name is "?a", as
    // the server reads it (botocore and the CRT sign %3Fa).
    [TestCase("?a=1", "%3Fa=1", TestName = "Query: a leading '?' belongs to the first name")]
    [TestCase("??a=1&b", "%3F%3Fa=1&b=", TestName = "Query: two leading '?'")]
    [TestCase("?", "%3F=", TestName = "Query: a lone '?' is a name")]
    [TestCase("a=1&&b=2&", "a=1&b=2", TestName = "Query: empty parameters are dropped")]
    public void CanonicalQueryIs(string wireQuery, string expected) =>
        Assert.That(CanonicalQuery(wireQuery), Is.EqualTo(expected));

    [Test]
    public async Task QueryStartingWithQuestionMark_ThroughSignAsync()
    {
        var uri = new Uri("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/f/invocations??a=1");
        Assert.That(uri.Query, Is.EqualTo("??a=1"), "System.Uri keeps the second '?'");
        using var request = new HttpRequestMessage(HttpMethod.Post, uri);

        var signature = await SigV4.SignAsync(request, Credentials(), new SigV4Options("lambda", "us-east-1") { Clock = new ManualClock(Time) });

        Assert.That(Line(signature.CanonicalRequest, 2), Is.EqualTo("%3Fa=1"));
        Assert.That(signature.Signature, Is.EqualTo(Signature(signature.CanonicalRequest, AmzDate, "us-east-1", "lambda")));
        Assert.That(SigV4.SplitPathAndQuery(uri), Is.EqualTo(("/2015-03-31/functions/f/invocations", "?a=1")));
    }

    [TestCase("https://example.amazonaws.com/a%20b/c?x=1&y=%2B#frag", "/a%20b/c", "x=1&y=%2B", TestName = "SplitPathAndQuery: no fragment, escapes kept")]
    [TestCase("https://example.amazonaws.com", "/", "", TestName = "SplitPathAndQuery: no path")]
    [TestCase("https://example.amazonaws.com/a?", "/a", "", TestName = "SplitPathAndQuery: empty query")]
    public void SplitPathAndQuery_IsWhatHttpClientSends(string uri, string path, string query) =>
        Assert.That(SigV4.SplitPathAndQuery(new Uri(uri)), Is.EqualTo((path, query)));

    [Test]
    public void SplitPathAndQuery_RelativeUri_IsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => SigV4.SplitPathAndQuery(new Uri("/a?b", UriKind.Relative)))!;
        Assert.That(e.ParamName, Is.EqualTo("uri"));
        AssertHelpful(e, "relative", "absolute");
    }

    // More parameters than the short-run sort handles: sorted, reversed and shuffled orders give the same canonical
    // query, and repeated names are sorted by value.
    [TestCase(17)]
    [TestCase(200)]
    [TestCase(5000)]
    public void ManyParametersAreSortedByNameThenValue(int count)
    {
        var pairs = Enumerable.Range(0, count).Select(i => (Name: "p" + (i % 37).ToString("D2", System.Globalization.CultureInfo.InvariantCulture), Value: "v" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToList();
        string expected = string.Join('&', pairs.OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal).Select(p => p.Name + "=" + p.Value));
        var random = new Random(count);
        foreach (var order in new[] { pairs, Enumerable.Reverse(pairs).ToList(), pairs.OrderBy(_ => random.Next()).ToList() })
            Assert.That(CanonicalQuery(string.Join('&', order.Select(p => p.Name + "=" + p.Value))), Is.EqualTo(expected));
    }


    [Test]
    public void FullCanonicalRequestWithAQuery()
    {
        var signature = SigV4.Sign("GET", "/", "b=2&a=3&b=1&acl&q=a+b&p=%2B", Headers(("Host", "example.amazonaws.com")), EmptyHash, Time,
            Credentials(), new SigV4Options("service", "us-east-1"));

        const string expected =
            "GET\n/\na=3&acl=&b=1&b=2&p=%2B&q=a%20b\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.Signature, Is.EqualTo(Signature(expected, AmzDate, "us-east-1", "service")));
    }

    [Test]
    public async Task QueryFromAUri_ThroughSignAsync()
    {
        var uri = new Uri("https://example.amazonaws.com/?b=2&a=3&b=1&acl&q=a+b&p=%2B&e=%c3%a9&s=x y");
        // System.Uri keeps '+' and %2B, uppercases escapes and escapes a raw space as %20.
        Assert.That(uri.Query, Is.EqualTo("?b=2&a=3&b=1&acl&q=a+b&p=%2B&e=%C3%A9&s=x%20y"));
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);

        var signature = await SigV4.SignAsync(request, Credentials(), new SigV4Options("service", "us-east-1") { Clock = new ManualClock(Time) });

        Assert.That(Line(signature.CanonicalRequest, 2), Is.EqualTo("a=3&acl=&b=1&b=2&e=%C3%A9&p=%2B&q=a%20b&s=x%20y"));
    }

    [Test]
    public void PresignedQuery_MergesAndSortsTheCallersParameters()
    {
        var signature = SigV4.Presign("GET", "/", "acl&Action=ListUsers", Headers(("Host", "example.amazonaws.com")), EmptyHash, Time,
            TimeSpan.FromSeconds(60), Credentials(), new SigV4Options("service", "us-east-1"));

        const string expected =
            "GET\n/\n" +
            "Action=ListUsers&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request" +
            "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&acl=\n" +
            "host:example.amazonaws.com\n\nhost\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.QueryParameters, Does.EndWith("&X-Amz-Signature=" + Signature(expected, AmzDate, "us-east-1", "service")));
    }
}
