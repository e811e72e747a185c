using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>One case folder of AWS's signing test suite (tests/TestData/aws-signing-test-suite, format in its SOURCE.md).</summary>
public sealed class SuiteCase
{
    public static readonly string Root = System.IO.Path.Combine(TestContext.CurrentContext.TestDirectory, "TestData", "aws-signing-test-suite");

    public required string Name { get; init; }
    public required string Folder { get; init; }
    public required string Method { get; init; }
    public required string Path { get; init; }
    public required string Query { get; init; }
    public required List<KeyValuePair<string, string>> Headers { get; init; }
    public required byte[] Body { get; init; }
    public required AwsCredentials Credentials { get; init; }
    public required string Region { get; init; }
    public required string Service { get; init; }
    public required DateTimeOffset Time { get; init; }
    public required int ExpiresSeconds { get; init; }
    public required bool Normalize { get; init; }
    public required bool SignBody { get; init; }
    public required bool OmitSessionToken { get; init; }

    public override string ToString() => Name;

    public string Read(string file) => File.ReadAllText(System.IO.Path.Combine(Folder, file));

    public bool Has(string file) => File.Exists(System.IO.Path.Combine(Folder, file));

    public string PayloadHash => SignBody ? SigV4.HashPayload(Body) : SigV4.EmptyPayloadHash;

    public SigV4Options Options(SigningAlgorithm algorithm) => new(Service, Region)
    {
        Algorithm = algorithm,
        NormalizePath = Normalize,
        DoubleEncodePath = true,
        AddContentSha256Header = SignBody,
        SignSessionToken = !OmitSessionToken,
    };

    public SigV4Signature Sign(SignatureLocation location, SigningAlgorithm algorithm) => location == SignatureLocation.Header
        ? SigV4.Sign(Method, Path, Query, Headers, PayloadHash, Time, Credentials, Options(algorithm))
        : SigV4.Presign(Method, Path, Query, Headers, PayloadHash, Time, TimeSpan.FromSeconds(ExpiresSeconds), Credentials, Options(algorithm));

    public static IEnumerable<SuiteCase> All(string suite) =>
        Directory.GetDirectories(System.IO.Path.Combine(Root, suite)).OrderBy(d => d, StringComparer.Ordinal)
            .Where(d => File.Exists(System.IO.Path.Combine(d, "header-canonical-request.txt")))
            .Select(Load);

    public static SuiteCase Load(string folder)
    {
        using var context = JsonDocument.Parse(File.ReadAllText(System.IO.Path.Combine(folder, "context.json")));
        var root = context.RootElement;
        var credentials = root.GetProperty("credentials");
        var request = ParseRequest(File.ReadAllBytes(System.IO.Path.Combine(folder, "request.txt")));
        return new SuiteCase
        {
            Name = System.IO.Path.GetFileName(folder),
            Folder = folder,
            Method = request.Method,
            Path = request.Path,
            Query = request.Query,
            Headers = request.Headers,
            Body = request.Body,
            Credentials = new AwsCredentials(
                credentials.GetProperty("access_key_id").GetString()!,
                credentials.GetProperty("secret_access_key").GetString()!,
                credentials.TryGetProperty("token", out var token) ? token.GetString() : null),
            Region = root.GetProperty("region").GetString()!,
            Service = root.GetProperty("service").GetString()!,
            Time = DateTimeOffset.Parse(root.GetProperty("timestamp").GetString()!, System.Globalization.CultureInfo.InvariantCulture),
            ExpiresSeconds = root.GetProperty("expiration_in_seconds").GetInt32(),
            Normalize = root.GetProperty("normalize").GetBoolean(),
            SignBody = root.GetProperty("sign_body").GetBoolean(),
            OmitSessionToken = root.TryGetProperty("omit_session_token", out var omit) && omit.GetBoolean(),
        };
    }

    public sealed record HttpText(string Method, string Path, string Query, List<KeyValuePair<string, string>> Headers, byte[] Body);

    /// <summary>Parses the suite's HTTP text: request line, headers (a line starting with white space folds into the
    /// previous value, as an HTTP parser unfolds it), an empty line, and the body.</summary>
    public static HttpText ParseRequest(byte[] bytes)
    {
        var text = Encoding.UTF8.GetString(bytes);
        int headerEnd = text.IndexOf("\n\n", StringComparison.Ordinal);
        string head = headerEnd < 0 ? text.TrimEnd('\n') : text[..headerEnd];
        byte[] body = headerEnd < 0 ? [] : Encoding.UTF8.GetBytes(text[(headerEnd + 2)..]);
        var lines = head.Split('\n');
        string requestLine = lines[0];
        int firstSpace = requestLine.IndexOf(' ');
        string target = requestLine[(firstSpace + 1)..requestLine.LastIndexOf(" HTTP/1.1", StringComparison.Ordinal)];
        int q = target.IndexOf('?');
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var line in lines.Skip(1))
        {
            if (line.Length > 0 && (line[0] == ' ' || line[0] == '\t'))
                headers[^1] = new(headers[^1].Key, headers[^1].Value + " " + line.TrimStart(' ', '\t'));
            else
            {
                int colon = line.IndexOf(':');
                headers.Add(new(line[..colon], line[(colon + 1)..]));
            }
        }
        return new HttpText(requestLine[..firstSpace], q < 0 ? target : target[..q], q < 0 ? "" : target[(q + 1)..], headers, body);
    }

    /// <summary>Query parameters as the suite's harness compares them: an unordered set, case-insensitive.</summary>
    public static string[] QuerySet(string query) =>
        query.Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.ToLowerInvariant()).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Headers as the suite's harness compares them: a multiset, names case-insensitive, values exact.</summary>
    public static string[] HeaderMultiset(IEnumerable<KeyValuePair<string, string>> headers) =>
        headers.Select(h => h.Key.ToLowerInvariant() + ":" + h.Value).Order(StringComparer.Ordinal).ToArray();
}
