using System.Net.Http.Headers;
using SigV4Lite;
using static SigV4Lite.Tests.Reference;

namespace SigV4Lite.Tests;

/// <summary>Canonical headers beyond AWS's suite: white space, repeated names, ordinal sorting and the headers that
/// must never be signed.</summary>
public class CanonicalHeaderTests
{
    private static readonly SigV4Options Generic = new("service", "us-east-1");

    [Test]
    public void WhiteSpaceRepeatsSortingAndNeverSignedHeaders()
    {
        var headers = Headers(
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Meta-Spaces", "  a   b  \t c  "),
            ("X-Amz-Meta-Tabs", "\tx\t\ty\t"),
            ("x-amz-a_b", "1"),
            ("X-Amz-A-B", "2"),
            ("X-Amz-Az", "3"),
            ("X-Amz-Meta-Repeat", "first"),
            ("User-Agent", "test/1.0"),
            ("x-amz-meta-repeat", " second   value "),
            ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
            ("Expect", "100-continue"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "x-amz-checksum-crc32"),
            ("Upgrade", "h2c"),
            ("X-Amz-Meta-Empty", "   "));

        var signature = SigV4.Sign("GET", "/", "", headers, EmptyHash, Time, Credentials(), Generic);

        // Lowercase ordinal order: '-' (2D) < '_' (5F) < 'z' (7A). A case-insensitive comparer that uppercases
        // ('Z' is 5A) would put x-amz-az before x-amz-a_b.
        const string signedHeaders = "host;x-amz-a-b;x-amz-a_b;x-amz-az;x-amz-date;x-amz-meta-empty;x-amz-meta-repeat;x-amz-meta-spaces;x-amz-meta-tabs";
        const string expected =
            "GET\n/\n\n" +
            "host:example.amazonaws.com\n" +
            "x-amz-a-b:2\n" +
            "x-amz-a_b:1\n" +
            "x-amz-az:3\n" +
            "x-amz-date:20150830T123600Z\n" +
            "x-amz-meta-empty:\n" +
            "x-amz-meta-repeat:first,second value\n" +
            "x-amz-meta-spaces:a b c\n" +
            "x-amz-meta-tabs:x y\n" +
            "\n" + signedHeaders + "\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.SignedHeaders, Is.EqualTo(signedHeaders));
        Assert.That(signature.Authorization, Is.EqualTo(Authorization(expected, signedHeaders, AmzDate, "us-east-1", "service")));
    }

    [Test]
    public void RepeatedNamesAreJoinedInTheOrderGiven()
    {
        var headers = Headers(("x-amz-meta-r", "2"), ("Host", "example.amazonaws.com"), ("X-AMZ-META-R", "1"), ("x-Amz-Meta-R", "3"));

        var signature = SigV4.Sign("GET", "/", "", headers, EmptyHash, Time, Credentials(), Generic);

        Assert.That(Line(signature.CanonicalRequest, 5), Is.EqualTo("x-amz-meta-r:2,1,3"));
        Assert.That(signature.SignedHeaders, Is.EqualTo("host;x-amz-date;x-amz-meta-r"));
    }

    [Test]
    public void NonAsciiValuesAreSignedAsUtf8()
    {
        // HttpClient refuses non-ASCII header values by default, but the plain-values signer may be fed them by
        // another HTTP stack, which would send UTF-8: the canonical request must hash the same bytes.
        var headers = Headers(("Host", "example.amazonaws.com"), ("x-amz-meta-text", "caf\u00e9 \U0001F600"));

        var signature = SigV4.Sign("GET", "/", "", headers, EmptyHash, Time, Credentials(), Generic);

        const string expected = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-meta-text:caf\u00e9 \U0001F600\n\n" +
            "host;x-amz-date;x-amz-meta-text\n" + EmptyHash;
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(signature.Signature, Is.EqualTo(Signature(expected, AmzDate, "us-east-1", "service")));
    }

    [Test]
    public async Task HttpRequestMessageHeaders_AsHttpClientSendsThem()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://example.amazonaws.com/")
        {
            Content = new StringContent("hello"),
        };
        request.Headers.Add("X-Amz-Meta-Two", ["a", "b"]); // sent as one line "a, b"
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("test", "1.0"));
        request.Headers.ExpectContinue = true;
        request.Headers.ConnectionClose = true;
        request.Headers.TransferEncodingChunked = true;
        request.Headers.TryAddWithoutValidation("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793");
        request.Headers.TryAddWithoutValidation("x-amz-meta-spaced", "  p   q  ");

        var signature = await SigV4.SignAsync(request, Credentials(), new SigV4Options("service", "us-east-1") { Clock = new ManualClock(Time) });

        const string signedHeaders = "content-type;host;x-amz-date;x-amz-meta-spaced;x-amz-meta-two";
        const string expected =
            "POST\n/\n\n" +
            "content-type:text/plain; charset=utf-8\n" +
            "host:example.amazonaws.com\n" +
            "x-amz-date:20150830T123600Z\n" +
            "x-amz-meta-spaced:p q\n" +
            "x-amz-meta-two:a, b\n" +
            "\n" + signedHeaders + "\n" +
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; // SHA-256 of "hello"
        Assert.That(signature.CanonicalRequest, Is.EqualTo(expected));
        Assert.That(request.Headers.GetValues("Authorization").Single(), Is.EqualTo(Authorization(expected, signedHeaders, AmzDate, "us-east-1", "service")));
    }

    // More headers than the short-run sort handles: any order gives headers sorted by lowercase name, the values
    // of a repeated name joined in the order they were given.
    [TestCase(17)]
    [TestCase(300)]
    public void ManyHeadersAreSortedAndRepeatedValuesKeepTheirOrder(int count)
    {
        var headers = Enumerable.Range(0, count)
            .Select(i => ((i % 2 == 0 ? "X-Amz-Meta-" : "x-amz-meta-") + (i % 23).ToString("D2", System.Globalization.CultureInfo.InvariantCulture), "v" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
        var random = new Random(count);
        foreach (var order in new[] { headers, headers.OrderByDescending(h => h.Item1.ToLowerInvariant(), StringComparer.Ordinal).ToList(), headers.OrderBy(_ => random.Next()).ToList() })
        {
            // Within one name, the values go in the order they are given: the expected text follows the given order.
            string expectedForOrder = string.Join('\n', order.GroupBy(h => h.Item1.ToLowerInvariant()).OrderBy(g => g.Key, StringComparer.Ordinal)
                .Select(g => g.Key + ":" + string.Join(',', g.Select(h => h.Item2))));
            var signature = SigV4.Sign("GET", "/", "", Headers([("Host", "example.amazonaws.com"), .. order]), EmptyHash, Time, Credentials(), Generic);
            var lines = signature.CanonicalRequest.Split('\n');
            string amzHeaders = string.Join('\n', lines.Where(l => l.StartsWith("x-amz-meta-", StringComparison.Ordinal)));
            Assert.That(amzHeaders, Is.EqualTo(expectedForOrder));
            Assert.That(signature.SignedHeaders, Does.StartWith("host;x-amz-date;x-amz-meta-00;x-amz-meta-01;"));
        }
    }
}
