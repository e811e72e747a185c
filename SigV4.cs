// SigV4.cs: AWS Signature Version 4 (AWS4-HMAC-SHA256) and 4a (AWS4-ECDSA-P256-SHA256) for .NET.
// One file, BCL only. Copy it into any net8.0+ project, or compile it as part of the SigV4Lite package.
//
//   var credentials = new AwsCredentials(accessKeyId, secretAccessKey);
//   var http = new HttpClient(new SigV4Handler(credentials, new SigV4Options("lambda", "us-east-1")));
//
// The file reads in the order of the specification: the public values (credentials, options, the result), then
// the signer: step 1 the canonical request, step 2 the string to sign, step 3 the signing key, step 4 the
// signature. After that come the shells that apply a signature to an HttpRequestMessage, the DelegatingHandler, and
// the small helpers they share. Every type compiles as internal as well as public, for source-only packaging.
#nullable enable

using System;
using System.Buffers;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>
/// AWS credentials: an access key id, its secret access key and, for temporary credentials, a session token.
/// <see cref="ToString"/> shows the access key id only. The derived signing keys are cached here, per credentials
/// object, so that no cache anywhere is keyed by the secret.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsCredentials : IAwsCredentialsProvider, IDisposable
{
    /// <summary>Creates credentials.</summary>
    /// <param name="accessKeyId">The access key id, such as <c>AKIDEXAMPLE</c>.</param>
    /// <param name="secretAccessKey">The secret access key.</param>
    /// <param name="sessionToken">The session token of temporary credentials, or null.</param>
    /// <param name="expiration">When temporary credentials expire, or null when they do not.</param>
    /// <exception cref="ArgumentException">A value is empty, has white space, or the token is empty but not null.</exception>
    public AwsCredentials(string accessKeyId, string secretAccessKey, string? sessionToken = null, DateTimeOffset? expiration = null)
    {
        if (string.IsNullOrWhiteSpace(accessKeyId) || HasWhiteSpaceOrControl(accessKeyId))
            throw new ArgumentException("The access key id must be a non-empty value without white space, such as AKIAIOSFODNN7EXAMPLE.", nameof(accessKeyId));
        if (string.IsNullOrWhiteSpace(secretAccessKey) || HasWhiteSpaceOrControl(secretAccessKey))
            throw new ArgumentException($"The secret access key for access key id {accessKeyId} is empty or has white space; give the 40-character secret exactly as issued.", nameof(secretAccessKey));
        if (sessionToken is not null && (sessionToken.Length == 0 || HasWhiteSpaceOrControl(sessionToken)))
            throw new ArgumentException($"The session token for access key id {accessKeyId} is empty or has white space; pass null when there is no token.", nameof(sessionToken));
        AccessKeyId = accessKeyId;
        SecretAccessKey = secretAccessKey;
        SessionToken = sessionToken;
        Expiration = expiration;
    }

    /// <summary>The access key id.</summary>
    public string AccessKeyId { get; }

    /// <summary>The secret access key. Never printed by this library.</summary>
    public string SecretAccessKey { get; }

    /// <summary>The session token of temporary credentials, or null.</summary>
    public string? SessionToken { get; }

    /// <summary>When these credentials expire, or null if they do not.</summary>
    public DateTimeOffset? Expiration { get; }

    /// <summary>Returns this object: fixed credentials are their own provider.</summary>
    public ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default) => new(this);

    /// <summary>Shows the access key id, never the secret or the token.</summary>
    public override string ToString() =>
        $"AwsCredentials {{ AccessKeyId = {AccessKeyId}, SessionToken = {(SessionToken is null ? "none" : "(set)")}" +
        (Expiration is { } e ? ", Expiration = " + e.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture) + " }" : " }");

    /// <summary>Releases the SigV4a private key derived from these credentials, if one was derived.</summary>
    public void Dispose() => Interlocked.Exchange(ref _sigV4aKey, null)?.Dispose();

    // Steps 2 to 4 need, per (day, region, service), the scope's text and for SigV4 the derived key (step 3): four
    // entries cover a client that talks to a few services. Entries are immutable and swapped in whole, so readers
    // need no lock; a race only derives a key twice.
    private readonly SigningScope?[] _scopes = new SigningScope?[4];
    private int _nextSlot;
    private ECDsa? _sigV4aKey;

    internal SigningScope GetSigningScope(string amzDate, SigV4Options options)
    {
        foreach (var entry in _scopes)
            if (entry is not null && entry.IsFor(amzDate, options, AccessKeyId))
                return entry;
        var scope = SigningScope.Create(amzDate, options, AccessKeyId, SecretAccessKey);
        _scopes[(Interlocked.Increment(ref _nextSlot) & int.MaxValue) % _scopes.Length] = scope;
        return scope;
    }

    internal ECDsa GetSigV4aKey()
    {
        var key = Volatile.Read(ref _sigV4aKey);
        if (key is not null) return key;
        var derived = SigV4.DeriveSigV4aKey(AccessKeyId, SecretAccessKey);
        return Interlocked.CompareExchange(ref _sigV4aKey, derived, null) is { } winner ? DisposeAndReturn(derived, winner) : derived;

        static ECDsa DisposeAndReturn(ECDsa loser, ECDsa winner) { loser.Dispose(); return winner; }
    }

    private static bool HasWhiteSpaceOrControl(string s)
    {
        foreach (char c in s) if (c <= ' ' || c == '\u007f') return true;
        return false;
    }
}

/// <summary>A source of credentials that may change over time (rotation, refresh of temporary credentials).</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
interface IAwsCredentialsProvider
{
    /// <summary>Returns credentials that are valid now.</summary>
    ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default);
}

/// <summary>The signing algorithm.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum SigningAlgorithm
{
    /// <summary>AWS4-HMAC-SHA256: one region, HMAC signature.</summary>
    SigV4,
    /// <summary>AWS4-ECDSA-P256-SHA256: a set of regions (or <c>*</c>), ECDSA P-256 signature.</summary>
    SigV4a,
}

/// <summary>
/// What to sign for: service and region, and the choices that differ between services. The defaults follow the
/// service: the S3 family gets S3 path rules and an <c>x-amz-content-sha256</c> header, every other service the
/// generic rules.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class SigV4Options
{
    /// <summary>Creates options for a service (the signing name, such as <c>lambda</c> or <c>s3</c>) and a region.</summary>
    /// <param name="service">The service's signing name, e.g. <c>lambda</c>, <c>s3</c>, <c>execute-api</c>.</param>
    /// <param name="region">The region, e.g. <c>us-east-1</c>; for SigV4a a region set such as <c>us-east-1,us-west-2</c> or <c>*</c>.</param>
    /// <exception cref="ArgumentException">The service or region is empty or has white space or control characters.</exception>
    public SigV4Options(string service, string region)
    {
        Service = RequireToken(service, nameof(service), "a service signing name such as lambda or s3");
        if (service.Length > 64)
            throw new ArgumentException($"The service '{service}' is longer than 64 characters; give a signing name such as lambda or s3.", nameof(service));
        Region = RequireToken(region, nameof(region), "a region such as us-east-1 (for SigV4a a region set such as us-east-1,us-west-2 or *)");
        bool s3 = IsS3Family(service);
        NormalizePath = !s3;
        DoubleEncodePath = !s3;
        AddContentSha256Header = s3;
    }

    /// <summary>The service's signing name.</summary>
    public string Service { get; }

    /// <summary>The region (SigV4) or the comma-separated region set (SigV4a).</summary>
    public string Region { get; }

    /// <summary>The algorithm; <see cref="SigningAlgorithm.SigV4"/> by default.</summary>
    public SigningAlgorithm Algorithm { get; init; }

    /// <summary>The clock the request signers read; <see cref="TimeProvider.System"/> by default. The plain-values
    /// entry points take the time as an argument instead.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// The payload hash to sign when signing an <see cref="HttpRequestMessage"/>: null (the default) hashes the body;
    /// <see cref="SigV4.UnsignedPayload"/> leaves it unsigned (S3); or a precomputed lowercase hex SHA-256.
    /// </summary>
    public string? PayloadHash { get; init; }

    /// <summary>Whether to add and sign an <c>x-amz-content-sha256</c> header; on by default for the S3 family.</summary>
    public bool AddContentSha256Header { get; init; }

    /// <summary>Whether to remove <c>.</c> and <c>..</c> segments and collapse <c>//</c> in the path; off for the S3 family.</summary>
    public bool NormalizePath { get; init; }

    /// <summary>Whether the path as sent is encoded once more for the canonical request; off for the S3 family,
    /// whose canonical path is the key encoded once.</summary>
    public bool DoubleEncodePath { get; init; }

    /// <summary>Whether the session token is part of the signature (the default) or added after signing, as a few
    /// services (IoT WebSocket handshakes) require.</summary>
    public bool SignSessionToken { get; init; } = true;

    /// <summary>Shows the service, region and choices.</summary>
    public override string ToString() =>
        $"SigV4Options {{ Service = {Service}, Region = {Region}, Algorithm = {Algorithm}, NormalizePath = {NormalizePath}, DoubleEncodePath = {DoubleEncodePath}, AddContentSha256Header = {AddContentSha256Header}, SignSessionToken = {SignSessionToken} }}";

    private static bool IsS3Family(string service) =>
        service is "s3" or "s3-object-lambda" or "s3-outposts" or "s3express";

    private static string RequireToken(string value, string name, string example)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw new ArgumentException($"The {name} must not be empty; give {example}.", name);
        foreach (char c in value)
            if (c <= ' ' || c >= '\u007f')
                throw new ArgumentException($"The {name} '{value}' has a space, control or non-ASCII character; give {example}.", name);
        return value;
    }
}

/// <summary>Where a signature goes: the <c>Authorization</c> header, or the query string of a presigned URL.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum SignatureLocation
{
    /// <summary>Headers: <c>X-Amz-Date</c>, <c>Authorization</c> and the others in <see cref="SigV4Signature.HeadersToAdd"/>.</summary>
    Header,
    /// <summary>Query parameters: <see cref="SigV4Signature.QueryParameters"/>.</summary>
    Query,
}

/// <summary>
/// The result of signing: what to add to the request, and the intermediate values (canonical request, string to
/// sign) to compare with the ones AWS returns in a SignatureDoesNotMatch error. The intermediate values are
/// recomputed on demand from the inputs, so that signing itself allocates only what it returns: read them before
/// changing the header list that was signed.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
readonly struct SigV4Signature
{
    private readonly SigningInput _input;
    private readonly string _output;

    internal SigV4Signature(in SigningInput input, string output)
    {
        _input = input;
        _output = output;
    }

    /// <summary>Header or query signing.</summary>
    public SignatureLocation Location => _input.ExpiresSeconds == 0 ? SignatureLocation.Header : SignatureLocation.Query;

    /// <summary>The algorithm that made this signature.</summary>
    public SigningAlgorithm Algorithm => _input.Options.Algorithm;

    /// <summary>The <c>Authorization</c> header value (header signing), or null.</summary>
    public string? Authorization => Location == SignatureLocation.Header ? _output : null;

    /// <summary>The query parameters to append to the URL (query signing), encoded and joined with <c>&amp;</c>,
    /// ending with <c>X-Amz-Signature</c>; or null.</summary>
    public string? QueryParameters => Location == SignatureLocation.Query ? _output : null;

    /// <summary>The signature: lowercase hex (SigV4) or hex of the DER-encoded ECDSA signature (SigV4a).</summary>
    public string Signature
    {
        get
        {
            const string marker = "Signature=";
            int at = Output.LastIndexOf(marker, StringComparison.Ordinal);
            return Output.Substring(at + marker.Length);
        }
    }

    /// <summary>The <c>X-Amz-Date</c> value, <c>yyyyMMddTHHmmssZ</c>.</summary>
    public string AmzDate => Input.AmzDate;

    /// <summary>The credential scope: <c>date/region/service/aws4_request</c> (SigV4a: <c>date/service/aws4_request</c>).</summary>
    public string CredentialScope => SigV4.FormatScope(Input);

    /// <summary>The signed header names, lowercase, joined with <c>;</c>.</summary>
    public string SignedHeaders => SigV4.Describe(Input).SignedHeaders;

    /// <summary>The canonical request (step 1), as AWS computes it. It holds the session token when one is signed:
    /// log <see cref="RedactedCanonicalRequest"/> instead.</summary>
    public string CanonicalRequest => SigV4.Describe(Input).CanonicalRequest;

    /// <summary>The canonical request with the session token's value (as a header, or encoded in a presigned
    /// query) replaced by <c>(session token)</c>: safe to log or show.</summary>
    public string RedactedCanonicalRequest => SigV4.RedactSessionToken(CanonicalRequest, Input.SessionToken);

    /// <summary>The string to sign (step 2), as AWS computes it.</summary>
    public string StringToSign => SigV4.Describe(Input).StringToSign;

    private string Output => _output ?? throw new InvalidOperationException("This SigV4Signature is the default value: it holds no signature. Use the one SigV4.Sign or SigV4.Presign returns.");

    internal SigningInput Input => _output is null ? throw new InvalidOperationException("This SigV4Signature is the default value: it holds no signature. Use the one SigV4.Sign or SigV4.Presign returns.") : _input;

    /// <summary>The headers to add (header signing): <c>X-Amz-Date</c>, <c>X-Amz-Security-Token</c> when there is a
    /// token, <c>x-amz-content-sha256</c> when asked, <c>X-Amz-Region-Set</c> for SigV4a, then <c>Authorization</c>.
    /// Empty for query signing.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> HeadersToAdd
    {
        get
        {
            var input = Input;
            if (Location == SignatureLocation.Query) return Array.Empty<KeyValuePair<string, string>>();
            var list = new List<KeyValuePair<string, string>>(5) { new("X-Amz-Date", input.AmzDate) };
            if (input.SessionToken is { } token) list.Add(new("X-Amz-Security-Token", token));
            if (input.AddsContentSha256) list.Add(new("x-amz-content-sha256", input.PayloadHash));
            if (input.Options.Algorithm == SigningAlgorithm.SigV4a) list.Add(new("X-Amz-Region-Set", input.Options.Region));
            list.Add(new("Authorization", _output));
            return list;
        }
    }

    /// <summary>Shows the algorithm, location, scope and signed headers; never a secret.</summary>
    public override string ToString() =>
        _output is null ? "SigV4Signature { }" : $"SigV4Signature {{ {Algorithm}, {Location}, Scope = {CredentialScope}, SignedHeaders = {SignedHeaders} }}";
}

/// <summary>The plain values one signature is computed from.</summary>
internal readonly struct SigningInput
{
    public required string Method { get; init; }
    public required string Path { get; init; }
    public required string Query { get; init; }
    public required IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; }
    public required string PayloadHash { get; init; }
    public required string AmzDate { get; init; }
    public required string AccessKeyId { get; init; }
    /// <summary>The session token when it is to be sent (signed or not), else null.</summary>
    public required string? SessionToken { get; init; }
    public required SigV4Options Options { get; init; }
    /// <summary>0 for header signing, else X-Amz-Expires of a presigned URL.</summary>
    public required int ExpiresSeconds { get; init; }
    /// <summary>Whether the signer adds (and signs) x-amz-content-sha256 itself (header signing only).</summary>
    public required bool AddsContentSha256 { get; init; }

    public bool SignsSessionToken => SessionToken is not null && Options.SignSessionToken;
}

/// <summary>
/// A request exactly as it is sent: what step 1 canonicalizes, as given, adding and removing nothing. The signer
/// makes one from the caller's request and what it adds itself; <c>SigV4Verifier</c> from what it received.
/// </summary>
internal readonly record struct CanonicalRequestInput(string Method, string Path, string Query,
    KeyValuePair<string, string>[] Headers, string PayloadHash, string AmzDate, SigV4Options Options);

/// <summary>
/// The credential scope of one day, region, service and algorithm, written once as the signer needs it: for the
/// string to sign, and as the start of the Authorization value; with the SigV4 signing key derived for it (step 3).
/// Cached per credentials object (<see cref="AwsCredentials"/>), so that signing a request does not write it again.
/// </summary>
internal sealed class SigningScope
{
    private SigningScope(string date, SigV4Options options, string accessKeyId, byte[] scope, byte[] authorizationPrefix, byte[]? key)
    {
        Date = date;
        Region = options.Region;
        Service = options.Service;
        Algorithm = options.Algorithm;
        AccessKeyId = accessKeyId;
        IsAscii = Ascii.IsValid(accessKeyId);
        Scope = scope;
        AuthorizationPrefix = authorizationPrefix;
        Key = key;
    }

    /// <summary>yyyyMMdd.</summary>
    public string Date { get; }
    public string Region { get; }
    public string Service { get; }
    public SigningAlgorithm Algorithm { get; }
    public string AccessKeyId { get; }

    /// <summary>date/region/service/aws4_request (SigV4a: date/service/aws4_request), ASCII.</summary>
    public byte[] Scope { get; }

    /// <summary><c>ALGORITHM Credential=AKID/scope, SignedHeaders=</c>, UTF-8.</summary>
    public byte[] AuthorizationPrefix { get; }

    /// <summary>Whether the access key id is ASCII, as AWS's are (the prefix is then ASCII, which decodes faster).</summary>
    public bool IsAscii { get; }

    /// <summary>The SigV4 signing key; null for SigV4a, or when made without the secret (to describe a signature).</summary>
    public byte[]? Key { get; }

    /// <summary>Whether a signature at this time, with these options and key id, uses this scope: same day,
    /// algorithm, region, service and key id.</summary>
    public bool IsFor(string amzDate, SigV4Options options, string accessKeyId) =>
        amzDate.AsSpan(0, 8).SequenceEqual(Date) && options.Algorithm == Algorithm
        && options.Region == Region && options.Service == Service && accessKeyId == AccessKeyId;

    /// <summary>Writes the scope; derives the SigV4 key when given the secret.</summary>
    public static SigningScope Create(string amzDate, SigV4Options options, string accessKeyId, string? secretAccessKey)
    {
        string date = amzDate.Substring(0, 8);
        // SigV4a's scope has no region: the region set is a signed header instead.
        string scope = options.Algorithm == SigningAlgorithm.SigV4
            ? $"{date}/{options.Region}/{options.Service}/aws4_request"
            : $"{date}/{options.Service}/aws4_request";
        string algorithm = options.Algorithm == SigningAlgorithm.SigV4 ? SigV4.AlgorithmV4 : SigV4.AlgorithmV4a;
        var key = secretAccessKey is not null && options.Algorithm == SigningAlgorithm.SigV4
            ? SigV4.DeriveSigningKey(secretAccessKey, date, options.Region, options.Service)
            : null;
        return new SigningScope(date, options, accessKeyId, Encoding.ASCII.GetBytes(scope),
            Encoding.UTF8.GetBytes($"{algorithm} Credential={accessKeyId}/{scope}, SignedHeaders="), key);
    }

    /// <summary>Shows the scope; never the key.</summary>
    public override string ToString() => $"SigningScope {{ {Encoding.ASCII.GetString(Scope)} }}";
}

/// <summary>
/// A request shape prepared for header signing: its canonical request written once from validated inputs, with the
/// X-Amz-Date value as a slot and the payload hash left off the end, and the signed header list. Signing through it
/// writes only what changes from one signature to the next (the date, the payload hash, the signature) instead of
/// validating and canonicalizing the same method, path, query and headers again. <see cref="Matches"/> compares other
/// inputs by value. Made only for shapes whose canonical request holds nothing that depends on the payload (no
/// x-amz-content-sha256 header, given or added).
/// </summary>
internal sealed class SigV4Template
{
    internal SigV4Template(string method, string path, string query, KeyValuePair<string, string>[] headers, SigV4Options options,
        string? sessionToken, byte[] canonical, int dateAt, (int Start, int Length) signedHeaders)
    {
        Method = method;
        Path = path;
        Query = query;
        Headers = headers;
        Options = options;
        SessionToken = sessionToken;
        Canonical = canonical;
        DateAt = dateAt;
        SignedHeaders = signedHeaders;
    }

    public string Method { get; }
    public string Path { get; }
    public string Query { get; }
    /// <summary>A copy of the headers as given (Host included), so that a caller's later change to its list is seen.</summary>
    public KeyValuePair<string, string>[] Headers { get; }
    public SigV4Options Options { get; }
    /// <summary>The credentials' session token the shape was made with (in the canonical request when signed; a
    /// given X-Amz-Security-Token header is refused when there is one), else null.</summary>
    public string? SessionToken { get; }
    /// <summary>The canonical request up to the payload hash, ASCII or UTF-8.</summary>
    public byte[] Canonical { get; }
    /// <summary>Where the X-Amz-Date value (16 ASCII characters) goes in <see cref="Canonical"/>.</summary>
    public int DateAt { get; }
    /// <summary>Where the signed header list is in <see cref="Canonical"/>.</summary>
    public (int Start, int Length) SignedHeaders { get; }

    /// <summary>Whether these inputs are the shape's, compared by value (options by reference: they are immutable; an
    /// empty path is <c>/</c>, as signed).</summary>
    public bool Matches(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers, string? sessionToken, SigV4Options options)
    {
        if (!ReferenceEquals(options, Options) || !string.Equals(sessionToken, SessionToken, StringComparison.Ordinal)
            || !string.Equals(path?.Length == 0 ? "/" : path, Path, StringComparison.Ordinal) || !string.Equals(method, Method, StringComparison.Ordinal)
            || !string.Equals(query, Query, StringComparison.Ordinal) || headers.Count != Headers.Length)
            return false;
        for (int i = 0; i < Headers.Length; i++)
        {
            var header = headers[i];
            if (!string.Equals(header.Key, Headers[i].Key, StringComparison.Ordinal) || !string.Equals(header.Value, Headers[i].Value, StringComparison.Ordinal))
                return false;
        }
        return true;
    }

    /// <summary>Shows the method and path; never the token.</summary>
    public override string ToString() => $"SigV4Template {{ {Method} {Path} }}";
}

/// <summary>
/// The signer. <see cref="Sign"/> and <see cref="Presign(string, string, string, IReadOnlyList{KeyValuePair{string, string}}, string, DateTimeOffset, TimeSpan, AwsCredentials, SigV4Options)"/>
/// take plain values and change nothing; <see cref="SignAsync"/> and <see cref="Presign(HttpMethod, Uri, TimeSpan, AwsCredentials, SigV4Options)"/>
/// apply them to an HTTP request.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
static class SigV4
{
    /// <summary>The payload hash that leaves the body unsigned (S3, presigned S3 URLs).</summary>
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    /// <summary>SHA-256 of the empty string, the payload hash of a request without a body.</summary>
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// <summary>The longest a presigned URL may be valid: 7 days.</summary>
    public static readonly TimeSpan MaxPresignedExpiry = TimeSpan.FromDays(7);

    internal const string AlgorithmV4 = "AWS4-HMAC-SHA256";
    internal const string AlgorithmV4a = "AWS4-ECDSA-P256-SHA256";

    // Region and service are at most 64 characters (checked), so that deriving a key needs only a stack buffer.
    private const int MaxNameLength = 64;
    private const int MaxSignature = 80; // HMAC-SHA256: 32 bytes; DER ECDSA P-256: at most 72

    /// <summary>Returns the payload hash of a body: lowercase hex SHA-256.</summary>
    public static string HashPayload(ReadOnlySpan<byte> body)
    {
        Span<byte> hash = stackalloc byte[32];
        var sha = t_sha256 ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(body);
        sha.GetHashAndReset(hash);
        return HexString(hash);
    }

    /// <summary>
    /// Signs a request given as plain values, for the <c>Authorization</c> header. Pure: reads no clock and changes
    /// nothing; apply <see cref="SigV4Signature.HeadersToAdd"/> to the request.
    /// </summary>
    /// <param name="method">The HTTP method, e.g. <c>POST</c>.</param>
    /// <param name="path">The path exactly as it is sent (percent-encoded), e.g. <c>/2015-03-31/functions/my-function/invocations</c>.</param>
    /// <param name="query">The query exactly as it is sent: everything after the URL's first <c>?</c>, without that
    /// <c>?</c> (<see cref="SplitPathAndQuery"/>); empty for none. It is canonicalized as given: a further leading <c>?</c>
    /// is part of the first name, and a <c>+</c> reads as a space, as AWS reads them.</param>
    /// <param name="headers">The headers that are sent, including <c>Host</c>. Repeated names are kept in order.</param>
    /// <param name="payloadHash">Lowercase hex SHA-256 of the body (<see cref="HashPayload"/>, <see cref="EmptyPayloadHash"/>), or <see cref="UnsignedPayload"/>.</param>
    /// <param name="time">The signing time.</param>
    /// <param name="credentials">The credentials.</param>
    /// <param name="options">Service, region and choices.</param>
    /// <exception cref="ArgumentException">An input is malformed or the request is already signed; the message says which and how to fix it.</exception>
    public static SigV4Signature Sign(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers,
        string payloadHash, DateTimeOffset time, AwsCredentials credentials, SigV4Options options)
    {
        // A thread that signs the same request shape again (a loop, a poller, a handler on one path) signs through the
        // shape it prepared: only the date, payload hash and signature are written.
        var memo = t_signMemo ??= new SignMemo();
        bool prepared = memo.Template is { } template && IsShapeOf(template, method, path, query, headers, credentials, options);
        var signature = prepared ? SignWithTemplate(memo.Template!, payloadHash, time, credentials)
            : SignCore(method, path, query, headers, payloadHash, time, 0, credentials, options);
        memo.Signed(method, path, query, headers, options, prepared, signature);
        return signature;
    }

    [ThreadStatic] private static SignMemo? t_signMemo;

    // Null inputs are never a shape's: they go the general way, which says what is wrong.
    private static bool IsShapeOf(SigV4Template template, string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>>? headers,
        AwsCredentials? credentials, SigV4Options options) =>
        credentials is not null && headers is not null && template.Matches(method, path, query, headers, credentials.SessionToken, options);

    // The last request a thread signed, and the shape it prepared. A shape is prepared when the same objects (its
    // strings and header list, compared by reference: no copy is made for a request signed once) are signed twice
    // in a row the general way, so that a thread whose every request differs pays only a few reference checks, and
    // one that alternates between shapes never prepares one per call.
    private sealed class SignMemo
    {
        private string? _method, _path, _query;
        private object? _headers;
        private SigV4Options? _options;

        public SigV4Template? Template { get; private set; }

        public void Signed(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers, SigV4Options options,
            bool prepared, in SigV4Signature signature)
        {
            if (!prepared && ReferenceEquals(method, _method) && ReferenceEquals(path, _path) && ReferenceEquals(query, _query)
                && ReferenceEquals(headers, _headers) && ReferenceEquals(options, _options))
                Template = CreateTemplate(signature.Input);
            (_method, _path, _query, _headers, _options) = (method, path, query, headers, options);
        }
    }

    // Signs through a prepared shape: the payload hash checked, the date written, the rest as SignInput does.
    private static SigV4Signature SignWithTemplate(SigV4Template template, string payloadHash, DateTimeOffset time, AwsCredentials credentials)
    {
        ValidatePayloadHash(payloadHash, nameof(payloadHash));
        var input = new SigningInput
        {
            Method = template.Method,
            Path = template.Path.Length == 0 ? "/" : template.Path,
            Query = template.Query,
            Headers = template.Headers,
            PayloadHash = payloadHash,
            AmzDate = AmzDate(time.UtcDateTime),
            AccessKeyId = credentials.AccessKeyId,
            SessionToken = credentials.SessionToken,
            Options = template.Options,
            ExpiresSeconds = 0,
            AddsContentSha256 = false,
        };
        var scope = credentials.GetSigningScope(input.AmzDate, template.Options);
        var w = new ByteBuilder(1024);
        try
        {
            WriteFromTemplate(ref w, template, input.AmzDate);
            w.AppendAscii(payloadHash);
            return new SigV4Signature(input, SignWritten(ref w, template, input.AmzDate, scope, credentials));
        }
        finally
        {
            w.Dispose();
        }
    }

    /// <summary>
    /// Signs through a prepared shape with the payload hash computed here from the body (no hex string made for it):
    /// returns the Authorization value and the X-Amz-Date value it was signed with.
    /// </summary>
    internal static string SignWithTemplate(SigV4Template template, ReadOnlySpan<byte> body, DateTimeOffset time, AwsCredentials credentials, out string amzDate)
    {
        amzDate = AmzDate(time.UtcDateTime);
        var scope = credentials.GetSigningScope(amzDate, template.Options);
        var w = new ByteBuilder(1024);
        try
        {
            WriteFromTemplate(ref w, template, amzDate);
            Span<byte> hash = stackalloc byte[32];
            var sha = t_sha256 ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            sha.AppendData(body);
            sha.GetHashAndReset(hash);
            w.AppendHex(hash);
            return SignWritten(ref w, template, amzDate, scope, credentials);
        }
        finally
        {
            w.Dispose();
        }
    }

    /// <summary>
    /// Prepares a request shape for <see cref="SignWithTemplate(SigV4Template, ReadOnlySpan{byte}, DateTimeOffset, AwsCredentials, out string)"/>,
    /// validating it as <see cref="Sign"/> does (the same exceptions); null for a shape that cannot be prepared (one
    /// with x-amz-content-sha256, given or added).
    /// </summary>
    internal static SigV4Template? CreateTemplate(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers,
        DateTimeOffset time, AwsCredentials credentials, SigV4Options options)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentNullException.ThrowIfNull(options);
        return CreateTemplate(Validate(method, path, query, headers, EmptyPayloadHash, time, 0, credentials, options));
    }

    private static SigV4Template? CreateTemplate(in SigningInput input)
    {
        if (input.ExpiresSeconds != 0 || input.AddsContentSha256) return null;
        for (int i = 0; i < input.Headers.Count; i++)
            if (input.Headers[i].Key.Equals("x-amz-content-sha256", StringComparison.OrdinalIgnoreCase)) return null;
        var w = new ByteBuilder(1024);
        try
        {
            var signedHeaders = WriteCanonicalRequest(ref w, input, out _);
            var canonical = w.Written[..(w.Length - input.PayloadHash.Length)];
            // X-Amz-Date is the signer's own header (a given one is refused), lowercase in the canonical headers.
            int dateAt = canonical.IndexOf("\nx-amz-date:"u8) + "\nx-amz-date:"u8.Length;
            var headers = new KeyValuePair<string, string>[input.Headers.Count];
            for (int i = 0; i < headers.Length; i++) headers[i] = input.Headers[i];
            return new SigV4Template(input.Method, input.Path, input.Query, headers, input.Options,
                input.SessionToken, canonical.ToArray(), dateAt, signedHeaders);
        }
        finally
        {
            w.Dispose();
        }
    }

    private static void WriteFromTemplate(ref ByteBuilder w, SigV4Template template, string amzDate)
    {
        w.Append(template.Canonical);
        w.OverwriteAscii(template.DateAt, amzDate);
    }

    // The builder holds the whole canonical request: steps 2 to 4, to the Authorization value (the template's signed
    // header list is at the same place in the builder, which starts with the template).
    private static string SignWritten(ref ByteBuilder w, SigV4Template template, string amzDate, SigningScope scope, AwsCredentials credentials)
    {
        int stringToSignStart = w.Length;
        WriteStringToSign(ref w, amzDate, scope);
        Span<byte> signature = stackalloc byte[MaxSignature];
        signature = signature[..ComputeSignature(w.Written[stringToSignStart..], scope, credentials, signature)];
        return FormatAuthorization(ref w, scope, template.SignedHeaders, signature);
    }

    /// <summary>
    /// Signs a request given as plain values, as a presigned URL: the result's <see cref="SigV4Signature.QueryParameters"/>
    /// go after the query. Pure: reads no clock and changes nothing.
    /// </summary>
    /// <param name="method">The HTTP method the URL will be used with.</param>
    /// <param name="path">The path exactly as it is sent (percent-encoded).</param>
    /// <param name="query">The query exactly as it is sent, without the URL's first <c>?</c>; empty for none. It must not
    /// hold the X-Amz-* presigning parameters: they are added.</param>
    /// <param name="headers">The headers that will be sent and signed, including <c>Host</c>.</param>
    /// <param name="payloadHash">Usually <see cref="UnsignedPayload"/> (S3) or <see cref="EmptyPayloadHash"/>.</param>
    /// <param name="time">The signing time; the URL is valid from then.</param>
    /// <param name="expiresIn">How long the URL is valid: whole seconds, from 1 second to 7 days.</param>
    /// <param name="credentials">The credentials.</param>
    /// <param name="options">Service, region and choices.</param>
    /// <exception cref="ArgumentOutOfRangeException">The expiry is outside 1 second to 7 days, or not whole seconds.</exception>
    /// <exception cref="ArgumentException">An input is malformed or the request is already signed.</exception>
    public static SigV4Signature Presign(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers,
        string payloadHash, DateTimeOffset time, TimeSpan expiresIn, AwsCredentials credentials, SigV4Options options) =>
        SignCore(method, path, query, headers, payloadHash, time, ExpirySeconds(expiresIn), credentials, options);

    private static int ExpirySeconds(TimeSpan expiresIn)
    {
        if (expiresIn < TimeSpan.FromSeconds(1) || expiresIn > MaxPresignedExpiry || expiresIn.Ticks % TimeSpan.TicksPerSecond != 0)
            throw new ArgumentOutOfRangeException(nameof(expiresIn), expiresIn,
                "A presigned URL's expiry must be whole seconds from 1 second to 7 days (604800 seconds); AWS rejects longer ones.");
        return (int)(expiresIn.Ticks / TimeSpan.TicksPerSecond);
    }

    private static SigV4Signature SignCore(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers,
        string payloadHash, DateTimeOffset time, int expiresSeconds, AwsCredentials credentials, SigV4Options options)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentNullException.ThrowIfNull(options);
        return SignInput(Validate(method, path, query, headers, payloadHash, time, expiresSeconds, credentials, options), credentials);
    }

    // One buffer holds, one after the other, the canonical request (step 1), the string to sign (step 2) and, for
    // header signing, the Authorization value (step 4).
    internal static SigV4Signature SignInput(in SigningInput input, AwsCredentials credentials)
    {
        var scope = credentials.GetSigningScope(input.AmzDate, input.Options);
        var w = new ByteBuilder(1024);
        try
        {
            var signedHeaders = WriteCanonicalRequest(ref w, input, out string? presignParameters);
            int stringToSignStart = w.Length;
            WriteStringToSign(ref w, input.AmzDate, scope);
            Span<byte> signature = stackalloc byte[MaxSignature];
            signature = signature[..ComputeSignature(w.Written[stringToSignStart..], scope, credentials, signature)];
            string output = presignParameters is null
                ? FormatAuthorization(ref w, scope, signedHeaders, signature)
                : FormatPresignedQuery(input, presignParameters, signature);
            return new SigV4Signature(input, output);
        }
        finally
        {
            w.Dispose();
        }
    }

    /// <summary>Whether <paramref name="signature"/> (hex) is the signature of the request as given, by these
    /// credentials: equal to the SigV4 signature (constant time), or a valid SigV4a signature.</summary>
    internal static bool SignatureMatches(in CanonicalRequestInput request, AwsCredentials credentials, string signature)
    {
        var scope = credentials.GetSigningScope(request.AmzDate, request.Options);
        var w = new ByteBuilder(1024);
        try
        {
            WriteCanonicalRequest(ref w, request);
            int stringToSignStart = w.Length;
            WriteStringToSign(ref w, request.AmzDate, scope);
            var stringToSign = w.Written[stringToSignStart..];
            if (scope.Algorithm == SigningAlgorithm.SigV4a)
                return VerifySigV4a(stringToSign, signature, credentials.GetSigV4aKey());
            Span<byte> mac = stackalloc byte[32];
            Span<byte> expected = stackalloc byte[64];
            WriteHex(mac[..SignV4(stringToSign, scope.Key!, mac)], expected);
            Span<byte> given = stackalloc byte[64];
            return signature.Length == 64 && Encoding.ASCII.GetBytes(signature, given) == 64 && CryptographicOperations.FixedTimeEquals(expected, given);
        }
        finally
        {
            w.Dispose();
        }
    }

    private static SigningInput Validate(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers,
        string payloadHash, DateTimeOffset time, int expiresSeconds, AwsCredentials credentials, SigV4Options options)
    {
        if (string.IsNullOrEmpty(method) || !IsToken(method))
            throw new ArgumentException($"The HTTP method '{method}' is not a valid method token; give one such as GET or POST.", nameof(method));
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length > 0 && path[0] != '/')
            throw new ArgumentException($"The path must start with '/' (it was '{path}'); give the path as sent, such as /2015-03-31/functions/f/invocations.", nameof(path));
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(headers);
        ValidatePayloadHash(payloadHash, nameof(payloadHash));
        if (options.Algorithm == SigningAlgorithm.SigV4 && options.Region.AsSpan().IndexOfAny(',', '*') >= 0)
            throw new ArgumentException($"The region '{options.Region}' is a region set; region sets need SigningAlgorithm.SigV4a.", nameof(options));
        if (options.Algorithm == SigningAlgorithm.SigV4 && options.Region.Length > MaxNameLength)
            throw new ArgumentException($"The region '{options.Region}' is longer than {MaxNameLength} characters; give a region such as us-east-1.", nameof(options));
        if (options.Algorithm == SigningAlgorithm.SigV4a)
            ValidateRegionSet(options.Region);

        bool hasHost = false, hasContentSha256 = false;
        for (int i = 0; i < headers.Count; i++)
        {
            var (name, value) = (headers[i].Key, headers[i].Value);
            if (string.IsNullOrEmpty(name) || !IsToken(name))
                throw new ArgumentException($"The header name '{name}' is not a valid HTTP header name.", nameof(headers));
            if (value is null)
                throw new ArgumentException($"The header '{name}' has a null value; give an empty string for an empty value.", nameof(headers));
            if (value.AsSpan().IndexOfAny(s_controlCharacters) is var control and >= 0)
                throw new ArgumentException(ControlCharacterMessage(name, value[control]), nameof(headers));
            if (name.Equals("host", StringComparison.OrdinalIgnoreCase)) hasHost = true;
            else if (name.Equals("authorization", StringComparison.OrdinalIgnoreCase) || (expiresSeconds == 0 && name.Equals("x-amz-date", StringComparison.OrdinalIgnoreCase)))
                throw new ArgumentException($"The request is already signed: it has a '{name}' header. Sign the unsigned request; the signer adds X-Amz-Date and Authorization itself.", nameof(headers));
            else if (name.Equals("x-amz-security-token", StringComparison.OrdinalIgnoreCase) && credentials.SessionToken is not null)
                throw new ArgumentException("The request already has an X-Amz-Security-Token header; remove it: the signer adds the credentials' session token itself.", nameof(headers));
            else if (name.Equals("x-amz-content-sha256", StringComparison.OrdinalIgnoreCase))
            {
                hasContentSha256 = true;
                if (!string.Equals(value.Trim(), payloadHash, StringComparison.Ordinal))
                    throw new ArgumentException($"The x-amz-content-sha256 header '{value}' differs from the payload hash '{payloadHash}'; they must be the same.", nameof(headers));
            }
            else if (options.Algorithm == SigningAlgorithm.SigV4a && name.Equals("x-amz-region-set", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException("The request already has an X-Amz-Region-Set header; remove it: the signer adds the options' region set itself.", nameof(headers));
        }
        if (!hasHost)
            throw new ArgumentException("The headers have no Host header; Host is always signed. Add it, with :port when the port is not the scheme's default.", nameof(headers));
        if (expiresSeconds != 0)
            RefusePresignParameters(query);

        return new SigningInput
        {
            Method = method,
            Path = path.Length == 0 ? "/" : path,
            Query = query,
            Headers = headers,
            PayloadHash = payloadHash,
            AmzDate = AmzDate(time.UtcDateTime),
            AccessKeyId = credentials.AccessKeyId,
            SessionToken = credentials.SessionToken,
            Options = options,
            ExpiresSeconds = expiresSeconds,
            AddsContentSha256 = expiresSeconds == 0 && options.AddContentSha256Header && !hasContentSha256,
        };
    }

    // A session token in a canonical request, as a header value or encoded in a query, replaced for logs and errors.
    internal static string RedactSessionToken(string canonicalRequest, string? sessionToken) => sessionToken is null ? canonicalRequest
        : canonicalRequest.Replace(sessionToken, "(session token)", StringComparison.Ordinal)
            .Replace(Uri.EscapeDataString(sessionToken), "(session token)", StringComparison.Ordinal);

    // X-Amz-Date changes once a second: a thread that signs more often than that reuses the text it wrote last.
    private static string AmzDate(DateTime utc)
    {
        long second = utc.Ticks / TimeSpan.TicksPerSecond;
        if (t_amzDate is { } last && last.Second == second) return last.Text;
        string text = FormatAmzDate(utc);
        t_amzDate = new AmzDateText(second, text);
        return text;
    }

    [ThreadStatic] private static AmzDateText? t_amzDate;

    private sealed record AmzDateText(long Second, string Text);

    // yyyyMMddTHHmmssZ, written digit by digit: the general date formatter costs more than the rest of a signature's setup.
    private static string FormatAmzDate(DateTime utc) => string.Create(16, utc, static (chars, t) =>
    {
        t.Deconstruct(out int year, out int month, out int day);
        TwoDigits(chars, 0, year / 100);
        TwoDigits(chars, 2, year % 100);
        TwoDigits(chars, 4, month);
        TwoDigits(chars, 6, day);
        chars[8] = 'T';
        TwoDigits(chars, 9, t.Hour);
        TwoDigits(chars, 11, t.Minute);
        TwoDigits(chars, 13, t.Second);
        chars[15] = 'Z';

        static void TwoDigits(Span<char> chars, int at, int value)
        {
            chars[at] = (char)('0' + value / 10);
            chars[at + 1] = (char)('0' + value % 10);
        }
    });

    internal static void ValidatePayloadHash(string payloadHash, string parameterName)
    {
        if (payloadHash is null)
            throw new ArgumentNullException(parameterName);
        if (payloadHash.Length == 64 && payloadHash.AsSpan().IndexOfAnyExcept(s_lowercaseHex) < 0) return;
        if (payloadHash == UnsignedPayload || payloadHash.StartsWith("STREAMING-", StringComparison.Ordinal)) return;
        throw new ArgumentException($"The payload hash '{payloadHash}' is neither 64 lowercase hex digits (SHA-256 of the body), UNSIGNED-PAYLOAD, nor a STREAMING-* value.", parameterName);
    }

    private static void ValidateRegionSet(string regionSet)
    {
        foreach (var region in regionSet.Split(','))
            if (region.Length == 0)
                throw new ArgumentException($"The region set '{regionSet}' has an empty entry; give regions separated by commas without spaces, such as us-east-1,us-west-2, or *.", "options");
    }

    // ---------------------------------------------------------------------------------------------------------
    // Step 1: the canonical request.
    //   METHOD \n canonical path \n canonical query \n canonical headers \n \n signed headers \n payload hash
    // ---------------------------------------------------------------------------------------------------------

    // The signer's request: the caller's headers and query, with what the signer adds (X-Amz-Date, the session
    // token, x-amz-content-sha256, the region set; or, presigning, the X-Amz-* parameters, returned encoded).
    private static (int Start, int Length) WriteCanonicalRequest(ref ByteBuilder w, in SigningInput input, out string? presignParameters)
    {
        // A request has few headers: they are collected on the stack unless there are many.
        var onStack = new HeaderBuffer();
        KeyValuePair<string, string>[]? rented = null;
        int capacity = input.Headers.Count + 4;
        Span<KeyValuePair<string, string>> headers = capacity <= HeaderBuffer.Length ? onStack : (rented = ArrayPool<KeyValuePair<string, string>>.Shared.Rent(capacity));
        try
        {
            headers = headers[..CollectHeaders(input, headers)];
            string query = input.Query;
            presignParameters = null;
            if (input.ExpiresSeconds != 0)
            {
                SortHeaders(headers); // X-Amz-SignedHeaders lists them
                presignParameters = PresignParameters(input, headers);
                query = query.Length == 0 ? presignParameters : query + "&" + presignParameters;
            }
            return WriteCanonicalRequest(ref w, input.Method, input.Path, query, headers, input.PayloadHash, input.Options);
        }
        finally
        {
            if (rented is not null) ArrayPool<KeyValuePair<string, string>>.Shared.Return(rented, clearArray: true);
        }
    }

    private static (int Start, int Length) WriteCanonicalRequest(ref ByteBuilder w, in CanonicalRequestInput request) =>
        WriteCanonicalRequest(ref w, request.Method, request.Path, request.Query, request.Headers, request.PayloadHash, request.Options);

    // Step 1 for any request, with exactly the headers and query given (sorting the headers in place); returns
    // where the signed header list was written.
    private static (int Start, int Length) WriteCanonicalRequest(ref ByteBuilder w, string method, string path, string query,
        scoped Span<KeyValuePair<string, string>> headers, string payloadHash, SigV4Options options)
    {
        SortHeaders(headers);
        w.AppendAscii(method);
        w.Append((byte)'\n');
        WriteCanonicalPath(ref w, path.Length == 0 ? "/" : path, options);
        w.Append((byte)'\n');
        WriteCanonicalQuery(ref w, query);
        w.Append((byte)'\n');
        WriteCanonicalHeaders(ref w, headers);
        w.Append((byte)'\n');
        int signedHeadersStart = w.Length;
        WriteSignedHeaders(ref w, headers);
        int signedHeadersLength = w.Length - signedHeadersStart;
        w.Append((byte)'\n');
        w.AppendAscii(payloadHash);
        return (signedHeadersStart, signedHeadersLength);
    }

    [System.Runtime.CompilerServices.InlineArray(Length)]
    private struct HeaderBuffer
    {
        public const int Length = 16;
        private KeyValuePair<string, string> _first;
    }

    // The path: non-S3 services normalize it and encode the path as sent once more ("double encoding", so that
    // %3A becomes %253A); S3 decodes the key and encodes it exactly once.
    private static void WriteCanonicalPath(ref ByteBuilder w, string path, SigV4Options options)
    {
        if (options.NormalizePath && NeedsNormalizing(path))
            path = NormalizePath(path);
        AppendUriEncoded(ref w, path, decodePercent: !options.DoubleEncodePath, plusIsSpace: false, keepSlash: true);
    }

    // Most paths have no dot: a search for '.' is much cheaper than one for "/.".
    private static bool NeedsNormalizing(string path) =>
        path.Contains("//", StringComparison.Ordinal) || (path.Contains('.') && path.Contains("/.", StringComparison.Ordinal));

    // Removes '.' and '..' segments and empty segments (RFC 3986 5.2.4 with '//' collapsed). The result ends in '/'
    // only when the path as sent does, as AWS's own signers (botocore, the CRT, smithy-rs) canonicalize it:
    // "/a/b/." is "/a/b", "/a/b/.." is "/a", "/a/./" is "/a/".
    internal static string NormalizePath(string path)
    {
        var segments = new List<string>();
        foreach (var part in path.Split('/'))
        {
            if (part == "..") { if (segments.Count > 0) segments.RemoveAt(segments.Count - 1); }
            else if (part.Length > 0 && part != ".") segments.Add(part);
        }
        string joined = "/" + string.Join('/', segments);
        return path.EndsWith('/') && segments.Count > 0 ? joined + "/" : joined;
    }

    // The query exactly as given: split at '&' (a leading '?' belongs to the first name), decode each name and
    // value, encode them (RFC 3986), sort by encoded name then value, keep repeated names, and write a name
    // without a value as "name=".
    private static void WriteCanonicalQuery(ref ByteBuilder w, string query)
    {
        if (query.Length == 0) return;

        var encoded = new ByteBuilder(query.Length * 2 + 256);
        var ranges = ArrayPool<QueryRange>.Shared.Rent(16);
        int count = 0;
        try
        {
            for (int start = 0, end; start <= query.Length; start = end + 1)
            {
                end = query.IndexOf('&', start);
                if (end < 0) end = query.Length;
                var pair = query.AsSpan(start, end - start);
                if (pair.IsEmpty) continue;
                int eq = pair.IndexOf('=');
                AddRange(ref ranges, ref count, ref encoded, eq < 0 ? pair : pair[..eq], eq < 0 ? ReadOnlySpan<char>.Empty : pair[(eq + 1)..]);
            }

            var sorted = ranges.AsSpan(0, count);
            StableSort(sorted, new QueryRangeComparer(encoded.Buffer));
            var bytes = encoded.Written;
            for (int i = 0; i < sorted.Length; i++)
            {
                if (i > 0) w.Append((byte)'&');
                w.Append(bytes.Slice(sorted[i].Start, sorted[i].NameLength));
                w.Append((byte)'=');
                w.Append(bytes.Slice(sorted[i].Start + sorted[i].NameLength, sorted[i].ValueLength));
            }
        }
        finally
        {
            ArrayPool<QueryRange>.Shared.Return(ranges);
            encoded.Dispose();
        }

        static void AddRange(ref QueryRange[] ranges, ref int count, ref ByteBuilder encoded, ReadOnlySpan<char> name, ReadOnlySpan<char> value)
        {
            if (count == ranges.Length)
            {
                var bigger = ArrayPool<QueryRange>.Shared.Rent(ranges.Length * 2);
                ranges.CopyTo(bigger, 0);
                ArrayPool<QueryRange>.Shared.Return(ranges);
                ranges = bigger;
            }
            int start = encoded.Length;
            AppendUriEncoded(ref encoded, name, decodePercent: true, plusIsSpace: true, keepSlash: false);
            int nameLength = encoded.Length - start;
            AppendUriEncoded(ref encoded, value, decodePercent: true, plusIsSpace: true, keepSlash: false);
            ranges[count++] = new QueryRange(start, nameLength, encoded.Length - start - nameLength);
        }
    }

    private readonly record struct QueryRange(int Start, int NameLength, int ValueLength);

    // Encoded query parameters, by name then value, ordinal (byte) order.
    private readonly struct QueryRangeComparer(byte[] bytes) : IComparer<QueryRange>
    {
        public int Compare(QueryRange a, QueryRange b)
        {
            int c = bytes.AsSpan(a.Start, a.NameLength).SequenceCompareTo(bytes.AsSpan(b.Start, b.NameLength));
            return c != 0 ? c : bytes.AsSpan(a.Start + a.NameLength, a.ValueLength).SequenceCompareTo(bytes.AsSpan(b.Start + b.NameLength, b.ValueLength));
        }
    }

    // Header names, lowercase, ordinal order.
    private readonly struct HeaderNameComparer : IComparer<KeyValuePair<string, string>>
    {
        public int Compare(KeyValuePair<string, string> a, KeyValuePair<string, string> b) => CompareLowercase(a.Key, b.Key);
    }

    // Stable, so that the values of a repeated header name keep the order they were given in.
    private static void SortHeaders(Span<KeyValuePair<string, string>> headers) => StableSort(headers, new HeaderNameComparer());

    // The X-Amz-* parameters of a presigned URL, encoded and joined with '&', without an unsigned session token
    // (added after signing) and without X-Amz-Signature (last, after signing).
    private static string PresignParameters(in SigningInput input, ReadOnlySpan<KeyValuePair<string, string>> sortedHeaders)
    {
        var text = new StringBuilder(256);
        text.Append("X-Amz-Algorithm=").Append(input.Options.Algorithm == SigningAlgorithm.SigV4 ? AlgorithmV4 : AlgorithmV4a)
            .Append("&X-Amz-Credential=").Append(Uri.EscapeDataString(input.AccessKeyId + "/" + FormatScope(input)))
            .Append("&X-Amz-Date=").Append(input.AmzDate)
            .Append("&X-Amz-SignedHeaders=");
        for (int i = 0; i < sortedHeaders.Length; i++)
        {
            if (i > 0 && string.Equals(sortedHeaders[i - 1].Key, sortedHeaders[i].Key, StringComparison.OrdinalIgnoreCase)) continue;
            if (i > 0) text.Append("%3B");
            text.Append(Uri.EscapeDataString(sortedHeaders[i].Key.ToLowerInvariant()));
        }
        text.Append("&X-Amz-Expires=").Append(input.ExpiresSeconds.ToString(CultureInfo.InvariantCulture));
        if (input.SignsSessionToken) text.Append("&X-Amz-Security-Token=").Append(Uri.EscapeDataString(input.SessionToken!));
        if (input.Options.Algorithm == SigningAlgorithm.SigV4a) text.Append("&X-Amz-Region-Set=").Append(Uri.EscapeDataString(input.Options.Region));
        return text.ToString();
    }

    // The headers to sign: the request's own, less those proxies and HTTP stacks change, plus the ones the signer
    // adds for header signing (X-Amz-Date, the session token, x-amz-content-sha256, X-Amz-Region-Set).
    private static int CollectHeaders(in SigningInput input, Span<KeyValuePair<string, string>> list)
    {
        var headers = input.Headers;
        int count = 0;
        for (int i = 0; i < headers.Count; i++)
            if (!IsNeverSigned(headers[i].Key))
                list[count++] = headers[i];
        if (input.ExpiresSeconds == 0)
        {
            list[count++] = new("x-amz-date", input.AmzDate);
            if (input.SignsSessionToken) list[count++] = new("x-amz-security-token", input.SessionToken!);
            if (input.AddsContentSha256) list[count++] = new("x-amz-content-sha256", input.PayloadHash);
            if (input.Options.Algorithm == SigningAlgorithm.SigV4a) list[count++] = new("x-amz-region-set", input.Options.Region);
        }
        return count;
    }

    // Headers that proxies, load balancers or the HTTP stack add, drop or rewrite: signing them breaks signatures.
    private static bool IsNeverSigned(string name) =>
        name.StartsWith("proxy-", StringComparison.OrdinalIgnoreCase) || name.Length switch
        {
            2 => Is(name, "te"),
            6 => Is(name, "expect"),
            7 => Is(name, "trailer") || Is(name, "upgrade") || Is(name, "baggage"),
            10 => Is(name, "user-agent") || Is(name, "connection") || Is(name, "keep-alive") || Is(name, "tracestate") || Is(name, "request-id"),
            11 => Is(name, "traceparent"),
            13 => Is(name, "authorization"),
            15 => Is(name, "x-amzn-trace-id"),
            17 => Is(name, "transfer-encoding"),
            19 => Is(name, "correlation-context"), // tracing headers: HttpClient writes them after the handlers, anew on every send
            _ => false,
        };

    private static bool Is(string name, string lowercase) => name.Equals(lowercase, StringComparison.OrdinalIgnoreCase);

    // One "name:value\n" per name: values of a repeated name joined with ',' in order, each trimmed with runs of
    // white space collapsed into one space.
    private static void WriteCanonicalHeaders(ref ByteBuilder w, scoped ReadOnlySpan<KeyValuePair<string, string>> sorted)
    {
        for (int i = 0; i < sorted.Length; i++)
        {
            bool sameAsPrevious = i > 0 && string.Equals(sorted[i - 1].Key, sorted[i].Key, StringComparison.OrdinalIgnoreCase);
            if (sameAsPrevious)
                w.Append((byte)',');
            else
            {
                if (i > 0) w.Append((byte)'\n');
                w.AppendLowercase(sorted[i].Key);
                w.Append((byte)':');
            }
            AppendTrimmedValue(ref w, sorted[i].Value);
        }
        w.Append((byte)'\n');
    }

    private static void WriteSignedHeaders(ref ByteBuilder w, scoped ReadOnlySpan<KeyValuePair<string, string>> sorted)
    {
        for (int i = 0; i < sorted.Length; i++)
        {
            if (i > 0 && string.Equals(sorted[i - 1].Key, sorted[i].Key, StringComparison.OrdinalIgnoreCase)) continue;
            if (i > 0) w.Append((byte)';');
            w.AppendLowercase(sorted[i].Key);
        }
    }

    private static void AppendTrimmedValue(ref ByteBuilder w, string value)
    {
        // Most values are printable ASCII with nothing to trim and no run of spaces (most have no space at all):
        // copied as they are. Tabs and other controls are outside ' '..'~'.
        var span = value.AsSpan();
        if (span.IndexOfAnyExceptInRange(' ', '~') < 0 && (span.Length == 0 || (span[0] != ' ' && span[^1] != ' '))
            && (!span.Contains(' ') || !span.Contains("  ", StringComparison.Ordinal)))
        {
            w.AppendAscii(span);
            return;
        }
        span = span.Trim(" \t");
        char[] collapsed = ArrayPool<char>.Shared.Rent(span.Length);
        int n = 0;
        bool inSpace = false;
        foreach (char c in span)
        {
            if (c is ' ' or '\t') { inSpace = true; continue; }
            if (inSpace) { collapsed[n++] = ' '; inSpace = false; }
            collapsed[n++] = c;
        }
        w.AppendUtf8(collapsed.AsSpan(0, n));
        ArrayPool<char>.Shared.Return(collapsed);
    }

    // RFC 3986 encoding: only A-Z a-z 0-9 - _ . ~ stay as they are, everything else is %XX of its UTF-8 bytes.
    private static void AppendUriEncoded(ref ByteBuilder w, ReadOnlySpan<char> text, bool decodePercent, bool plusIsSpace, bool keepSlash)
    {
        var unchanged = keepSlash ? s_unreservedAndSlash : s_unreserved;
        Span<byte> utf8 = stackalloc byte[4];
        int i = 0;
        while (i < text.Length)
        {
            int run = text[i..].IndexOfAnyExcept(unchanged);
            if (run != 0)
            {
                if (run < 0) run = text.Length - i;
                w.AppendAscii(text.Slice(i, run));
                i += run;
                continue;
            }
            char c = text[i];
            if (decodePercent && c == '%' && i + 2 < text.Length && IsHex(text[i + 1]) && IsHex(text[i + 2]))
            {
                AppendEncodedByte(ref w, (byte)(HexValue(text[i + 1]) << 4 | HexValue(text[i + 2])), keepSlash);
                i += 3;
                continue;
            }
            if (plusIsSpace && c == '+')
                AppendEncodedByte(ref w, (byte)' ', keepSlash);
            else if (c < 0x80)
                AppendEncodedByte(ref w, (byte)c, keepSlash);
            else
            {
                int length;
                if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    length = new Rune(c, text[i + 1]).EncodeToUtf8(utf8);
                    i++;
                }
                else
                    length = (Rune.TryCreate(c, out var rune) ? rune : Rune.ReplacementChar).EncodeToUtf8(utf8);
                foreach (byte b in utf8[..length]) AppendEncodedByte(ref w, b, keepSlash);
            }
            i++;
        }
    }

    private static void AppendEncodedByte(ref ByteBuilder w, byte b, bool keepSlash)
    {
        if (b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~' || (keepSlash && b == (byte)'/'))
            w.Append(b);
        else
        {
            w.Append((byte)'%');
            w.Append((byte)"0123456789ABCDEF"[b >> 4]);
            w.Append((byte)"0123456789ABCDEF"[b & 0xF]);
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Step 2: the string to sign.
    //   algorithm \n X-Amz-Date \n scope \n hex(SHA-256(canonical request))
    // ---------------------------------------------------------------------------------------------------------

    // The canonical request is all the builder holds so far: its hash goes at the end of the string to sign.
    private static void WriteStringToSign(ref ByteBuilder w, string amzDate, SigningScope scope)
    {
        Span<byte> hash = stackalloc byte[32];
        var sha = t_sha256 ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(w.Written);
        sha.GetHashAndReset(hash);

        w.Append(scope.Algorithm == SigningAlgorithm.SigV4 ? "AWS4-HMAC-SHA256\n"u8 : "AWS4-ECDSA-P256-SHA256\n"u8);
        w.AppendAscii(amzDate);
        w.Append((byte)'\n');
        w.Append(scope.Scope);
        w.Append((byte)'\n');
        w.AppendHex(hash);
    }

    [ThreadStatic] private static IncrementalHash? t_sha256;

    internal static string FormatScope(in SigningInput input) =>
        Encoding.ASCII.GetString(SigningScope.Create(input.AmzDate, input.Options, input.AccessKeyId, null).Scope);

    // ---------------------------------------------------------------------------------------------------------
    // Step 3: the signing key.
    //   SigV4: kDate = HMAC("AWS4" + secret, date), kRegion = HMAC(kDate, region), kService = HMAC(kRegion, service),
    //   kSigning = HMAC(kService, "aws4_request"). Cached per credentials object and day (AwsCredentials).
    //   SigV4a: an ECDSA P-256 key derived from the credentials (NIST SP 800-108 counter mode, HMAC-SHA256).
    // ---------------------------------------------------------------------------------------------------------

    internal static byte[] DeriveSigningKey(string secretAccessKey, ReadOnlySpan<char> date, string region, string service)
    {
        int secretLength = Encoding.UTF8.GetByteCount(secretAccessKey) + 4;
        var secret = secretLength <= 256 ? stackalloc byte[secretLength] : new byte[secretLength];
        Span<byte> key = stackalloc byte[32];
        try
        {
            "AWS4"u8.CopyTo(secret);
            Encoding.UTF8.GetBytes(secretAccessKey, secret[4..]);
            Span<byte> scratch = stackalloc byte[128];
            HMACSHA256.HashData(secret, scratch[..Encoding.ASCII.GetBytes(date, scratch)], key);
            HMACSHA256.HashData(key, scratch[..Encoding.ASCII.GetBytes(region, scratch)], key);
            HMACSHA256.HashData(key, scratch[..Encoding.ASCII.GetBytes(service, scratch)], key);
            HMACSHA256.HashData(key, "aws4_request"u8, key);
            return key.ToArray();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    // P-256 group order n, minus 2: a derived candidate k must be at most n-2 so that d = k+1 lies in [1, n-1].
    private static ReadOnlySpan<byte> P256OrderMinusTwo => new byte[]
    {
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x4F,
    };

    internal static ECDsa DeriveSigV4aKey(string accessKeyId, string secretAccessKey)
    {
        var hmacKey = Encoding.UTF8.GetBytes("AWS4A" + secretAccessKey);
        int akidLength = Encoding.UTF8.GetByteCount(accessKeyId);
        var fixedInput = new byte[4 + AlgorithmV4a.Length + 1 + akidLength + 1 + 4];
        Span<byte> k = stackalloc byte[32];
        var d = new byte[32];
        try
        {
            // i (32-bit, always 1) | label | 0x00 | context (access key id) | counter (1 byte) | L = 256 (32-bit)
            fixedInput[3] = 1;
            Encoding.ASCII.GetBytes(AlgorithmV4a, fixedInput.AsSpan(4));
            Encoding.UTF8.GetBytes(accessKeyId, fixedInput.AsSpan(4 + AlgorithmV4a.Length + 1));
            fixedInput[^2] = 1; // L = 0x00000100 = 256 bits
            for (int counter = 1; counter <= 254; counter++)
            {
                fixedInput[^5] = (byte)counter;
                HMACSHA256.HashData(hmacKey, fixedInput, k);
                if (IsAtMost(k, P256OrderMinusTwo))
                {
                    AddOne(k, d);
                    var key = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = d });
                    return key;
                }
            }
            throw new CryptographicException("No SigV4a key could be derived from these credentials (254 candidates exceeded the curve order).");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(hmacKey);
            CryptographicOperations.ZeroMemory(k);
            CryptographicOperations.ZeroMemory(d);
        }
    }

    // Constant-time a <= b for 32-byte big-endian numbers: the borrow of b - a, without data-dependent branches.
    private static bool IsAtMost(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        int borrow = 0;
        for (int i = a.Length - 1; i >= 0; i--)
            borrow = ((b[i] - a[i] - borrow) >> 8) & 1;
        return borrow == 0;
    }

    // Constant-time d = k + 1 for 32-byte big-endian numbers (k <= n-2, so it never overflows).
    private static void AddOne(ReadOnlySpan<byte> k, Span<byte> d)
    {
        int carry = 1;
        for (int i = k.Length - 1; i >= 0; i--)
        {
            int sum = k[i] + carry;
            d[i] = (byte)sum;
            carry = sum >> 8;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Step 4: the signature, and where it goes.
    // ---------------------------------------------------------------------------------------------------------

    private static int SignV4(ReadOnlySpan<byte> stringToSign, byte[] key, Span<byte> signature)
    {
        // An HMAC context keyed once and reset after each use is much cheaper than a one-shot HMAC, which sets
        // the key up again every time; one per thread, re-keyed when the signing key changes.
        var cache = t_hmac;
        if (cache is null || !ReferenceEquals(cache.Key, key))
        {
            cache?.Hmac.Dispose();
            t_hmac = cache = new HmacContext(key, IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key));
        }
        cache.Hmac.AppendData(stringToSign);
        return cache.Hmac.GetHashAndReset(signature);
    }

    [ThreadStatic] private static HmacContext? t_hmac;

    private sealed record HmacContext(byte[] Key, IncrementalHash Hmac)
    {
        public override string ToString() => nameof(HmacContext);
    }

    // ECDSA over SHA-256 of the string to sign, DER-encoded (r, s): randomized, so verify it, never compare it.
    private static int SignV4a(ReadOnlySpan<byte> stringToSign, AwsCredentials credentials, Span<byte> signature)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(stringToSign, hash);
        if (!credentials.GetSigV4aKey().TrySignHash(hash, signature, DSASignatureFormat.Rfc3279DerSequence, out int written))
            throw new CryptographicException("The SigV4a signature did not fit its buffer.");
        return written;
    }

    /// <summary>Returns the SigV4a public key (P-256 point) derived from credentials: give it to a verifier.</summary>
    public static ECPoint GetSigV4aPublicKey(AwsCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        return credentials.GetSigV4aKey().ExportParameters(includePrivateParameters: false).Q;
    }

    /// <summary>
    /// Checks a SigV4a signature: whether <paramref name="signatureHex"/> (hex of a DER-encoded ECDSA signature) is
    /// a valid P-256 signature of SHA-256(<paramref name="stringToSign"/>) under <paramref name="publicKey"/>.
    /// </summary>
    /// <returns>True if it verifies; false if it does not, or if the signature is not hex or not DER.</returns>
    public static bool VerifySigV4a(string stringToSign, string signatureHex, ECPoint publicKey)
    {
        ArgumentNullException.ThrowIfNull(stringToSign);
        ArgumentNullException.ThrowIfNull(signatureHex);
        using var key = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = publicKey });
        return VerifySigV4a(Encoding.UTF8.GetBytes(stringToSign), signatureHex, key);
    }

    private static bool VerifySigV4a(ReadOnlySpan<byte> stringToSign, string signatureHex, ECDsa key)
    {
        byte[] der;
        try { der = Convert.FromHexString(signatureHex); }
        catch (FormatException) { return false; }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(stringToSign, hash);
        try { return key.VerifyHash(hash, der, DSASignatureFormat.Rfc3279DerSequence); }
        catch (CryptographicException) { return false; }
    }

    private static int ComputeSignature(ReadOnlySpan<byte> stringToSign, SigningScope scope, AwsCredentials credentials, Span<byte> signature) =>
        scope.Algorithm == SigningAlgorithm.SigV4 ? SignV4(stringToSign, scope.Key!, signature) : SignV4a(stringToSign, credentials, signature);

    // Authorization: ALGORITHM Credential=AKID/scope, SignedHeaders=a;b;c, Signature=hex
    private static string FormatAuthorization(ref ByteBuilder w, SigningScope scope, (int Start, int Length) signedHeaders, scoped ReadOnlySpan<byte> signature)
    {
        int start = w.Length;
        w.Append(scope.AuthorizationPrefix);
        w.AppendWritten(signedHeaders.Start, signedHeaders.Length);
        w.Append(", Signature="u8);
        w.AppendHex(signature);
        var authorization = w.Written[start..];
        return scope.IsAscii ? Encoding.ASCII.GetString(authorization) : Encoding.UTF8.GetString(authorization);
    }

    // The X-Amz-* parameters, then an unsigned session token, then X-Amz-Signature last.
    private static string FormatPresignedQuery(in SigningInput input, string presignParameters, ReadOnlySpan<byte> signature)
    {
        string unsignedToken = input.SessionToken is { } token && !input.SignsSessionToken ? "&X-Amz-Security-Token=" + Uri.EscapeDataString(token) : "";
        return string.Concat(presignParameters, unsignedToken, "&X-Amz-Signature=", HexString(signature));
    }

    /// <summary>Recomputes the canonical request, string to sign and signed headers of a signature.</summary>
    internal static (string CanonicalRequest, string StringToSign, string SignedHeaders) Describe(in SigningInput input)
    {
        var w = new ByteBuilder(1024);
        try
        {
            var signedHeaders = WriteCanonicalRequest(ref w, input, out _);
            return Describe(ref w, input.AmzDate, SigningScope.Create(input.AmzDate, input.Options, input.AccessKeyId, null), signedHeaders);
        }
        finally
        {
            w.Dispose();
        }
    }

    /// <summary>The canonical request and string to sign of a request as given, signed with this access key id.</summary>
    internal static (string CanonicalRequest, string StringToSign) Describe(in CanonicalRequestInput request, string accessKeyId)
    {
        var w = new ByteBuilder(1024);
        try
        {
            var signedHeaders = WriteCanonicalRequest(ref w, request);
            var (canonicalRequest, stringToSign, _) = Describe(ref w, request.AmzDate, SigningScope.Create(request.AmzDate, request.Options, accessKeyId, null), signedHeaders);
            return (canonicalRequest, stringToSign);
        }
        finally
        {
            w.Dispose();
        }
    }

    // The builder holds the canonical request: adds the string to sign and returns the three texts.
    private static (string CanonicalRequest, string StringToSign, string SignedHeaders) Describe(ref ByteBuilder w, string amzDate, SigningScope scope, (int Start, int Length) signedHeaders)
    {
        int canonicalLength = w.Length;
        WriteStringToSign(ref w, amzDate, scope);
        return (Encoding.UTF8.GetString(w.Written[..canonicalLength]), Encoding.UTF8.GetString(w.Written[canonicalLength..]),
            Encoding.ASCII.GetString(w.Written.Slice(signedHeaders.Start, signedHeaders.Length)));
    }

    // ---------------------------------------------------------------------------------------------------------
    // The shells: signing an HttpRequestMessage, presigning a URL.
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// Signs an <see cref="HttpRequestMessage"/> in place: removes an earlier signature, hashes the body (without
    /// spoiling it for the send), and adds <c>X-Amz-Date</c>, <c>X-Amz-Security-Token</c>, <c>x-amz-content-sha256</c>
    /// when asked, and <c>Authorization</c>. The time comes from <see cref="SigV4Options.Clock"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The URI is relative, or a header is malformed (such as CR or LF in a value).</exception>
    /// <exception cref="InvalidOperationException">The body is a stream that can be read once only and is too large to buffer.</exception>
    public static async ValueTask<SigV4Signature> SignAsync(HttpRequestMessage request, AwsCredentials credentials, SigV4Options options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentNullException.ThrowIfNull(options);
        var uri = RequireAbsolute(request.RequestUri, nameof(request));
        RemoveSignature(request);

        var headers = new List<KeyValuePair<string, string>>(8);
        headers.Add(new("Host", request.Headers.Host ?? HostHeader(uri)));
        AddHeaders(headers, request.Headers);
        if (request.Content is not null) AddHeaders(headers, request.Content.Headers);

        string payloadHash = options.PayloadHash
            ?? ValueOf(request.Headers, "x-amz-content-sha256")
            ?? await HashContentAsync(request.Content, options, cancellationToken).ConfigureAwait(false);

        var (path, query) = SplitPathAndQuery(uri);
        var signature = Sign(request.Method.Method, path, query, headers, payloadHash, options.Clock.GetUtcNow(), credentials, options);
        foreach (var (name, value) in signature.HeadersToAdd)
        {
            if (name == "Authorization") SetAuthorization(request.Headers, value);
            else request.Headers.TryAddWithoutValidation(name, value);
            if (name == "x-amz-content-sha256") request.Options.Set(AddedContentSha256, true);
        }
        return signature;
    }

    /// <summary>
    /// Returns a presigned URL for <paramref name="uri"/>: anyone holding it can make the request until it expires.
    /// Signs the host only; the payload is <see cref="UnsignedPayload"/> for the S3 family, else the empty body's
    /// hash (or <see cref="SigV4Options.PayloadHash"/> when set). The time comes from <see cref="SigV4Options.Clock"/>.
    /// </summary>
    /// <param name="method">The HTTP method the URL will be used with.</param>
    /// <param name="uri">The absolute URI to presign; its query is kept, ahead of the X-Amz-* parameters.</param>
    /// <param name="expiresIn">How long the URL is valid: whole seconds, from 1 second to 7 days.</param>
    /// <param name="credentials">The credentials.</param>
    /// <param name="options">Service, region and choices.</param>
    /// <exception cref="ArgumentOutOfRangeException">The expiry is outside 1 second to 7 days.</exception>
    /// <exception cref="ArgumentException">The URI is relative, or its query is already presigned.</exception>
    public static Uri Presign(HttpMethod method, Uri uri, TimeSpan expiresIn, AwsCredentials credentials, SigV4Options options) =>
        Presign(method, uri, Array.Empty<KeyValuePair<string, string>>(), expiresIn, credentials, options);

    /// <summary>
    /// Returns a presigned URL for <paramref name="uri"/> that also signs <paramref name="headers"/>: whoever uses
    /// the URL must send those headers with those values (an EKS token signs <c>x-k8s-aws-id</c>; an S3 upload may
    /// sign <c>content-type</c> or a checksum header). Otherwise as <see cref="Presign(HttpMethod, Uri, TimeSpan, AwsCredentials, SigV4Options)"/>.
    /// </summary>
    /// <param name="method">The HTTP method the URL will be used with.</param>
    /// <param name="uri">The absolute URI to presign; its query is kept, ahead of the X-Amz-* parameters.</param>
    /// <param name="headers">The headers to sign besides Host, which comes from <paramref name="uri"/>.</param>
    /// <param name="expiresIn">How long the URL is valid: whole seconds, from 1 second to 7 days.</param>
    /// <param name="credentials">The credentials.</param>
    /// <param name="options">Service, region and choices.</param>
    /// <exception cref="ArgumentOutOfRangeException">The expiry is outside 1 second to 7 days.</exception>
    /// <exception cref="ArgumentException">The URI is relative, its query is already presigned, or a header is malformed or is Host.</exception>
    public static Uri Presign(HttpMethod method, Uri uri, IReadOnlyList<KeyValuePair<string, string>> headers, TimeSpan expiresIn,
        AwsCredentials credentials, SigV4Options options)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(options);
        uri = RequireAbsolute(uri, nameof(uri));
        var (path, query) = SplitPathAndQuery(uri);
        string payloadHash = options.PayloadHash ?? (options.AddContentSha256Header ? UnsignedPayload : EmptyPayloadHash);
        var signed = new List<KeyValuePair<string, string>>(headers.Count + 1) { new("Host", HostHeader(uri)) };
        foreach (var header in headers)
        {
            if (header.Key is not null && header.Key.Equals("Host", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException("The headers to sign include Host; remove it: the host comes from the URI (with :port when it is not the scheme's default).", nameof(headers));
            signed.Add(header);
        }
        var signature = Presign(method.Method, path, query, signed, payloadHash, options.Clock.GetUtcNow(), expiresIn, credentials, options);
        var text = uri.GetLeftPart(UriPartial.Authority) + path + "?" + (query.Length > 0 ? query + "&" : "") + signature.QueryParameters;
        return new Uri(text, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
    }

    private static readonly HttpRequestOptionsKey<bool> AddedContentSha256 = new("SigV4Lite.AddedContentSha256");

    // The body as the service will hash it. Bodies that can be read again (byte arrays, seekable streams) are hashed
    // in place; any other body is buffered first so that the send still has it, unless the service takes unsigned
    // payloads (the S3 family), which lets a large upload stream.
    private static async ValueTask<string> HashContentAsync(HttpContent? content, SigV4Options options, CancellationToken cancellationToken)
    {
        if (content is null) return EmptyPayloadHash;
        // A StreamContent computes its length only over a seekable stream, so a length it computed means it can be
        // read again; a length the caller set says nothing, and asking for the length stores the computed one.
        bool rereadable = content is ByteArrayContent || content is ReadOnlyMemoryContent
            || (content is StreamContent && !content.Headers.NonValidated.Contains("Content-Length") && content.Headers.ContentLength is not null);
        if (!rereadable)
        {
            if (options.AddContentSha256Header) return UnsignedPayload;
            try
            {
                await content.LoadIntoBufferAsync(MaxBufferedBody).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new InvalidOperationException(
                    $"The request body can be read only once and is larger than {MaxBufferedBody / (1024 * 1024)} MiB, too large to buffer for hashing. " +
                    "Send a ByteArrayContent or a seekable stream, or set SigV4Options.PayloadHash to its precomputed SHA-256.", e);
            }
        }
        var sink = t_hashSink ?? new HashSink();
        t_hashSink = null;
        await content.CopyToAsync(sink, cancellationToken).ConfigureAwait(false);
        string hash = sink.HexHashAndReset();
        t_hashSink = sink; // only a sink that finished is reused: a failed copy leaves part of a body in it
        return hash;
    }

    private const long MaxBufferedBody = 64L * 1024 * 1024;

    [ThreadStatic] private static HashSink? t_hashSink;

    // A write-only stream that hashes what is written: the body is copied into it, never into a buffer of ours.
    private sealed class HashSink : Stream
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public string HexHashAndReset()
        {
            Span<byte> hash = stackalloc byte[32];
            _sha.GetHashAndReset(hash);
            return HexString(hash);
        }

        public override void Write(ReadOnlySpan<byte> buffer) => _sha.AppendData(buffer);
        public override void Write(byte[] buffer, int offset, int count) => _sha.AppendData(buffer, offset, count);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            _sha.AppendData(buffer, offset, count);
            return Task.CompletedTask;
        }
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _sha.AppendData(buffer.Span);
            return default;
        }
        public override void Flush() { }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static Uri RequireAbsolute(Uri? uri, string parameterName)
    {
        if (uri is null)
            throw new ArgumentException("The request has no RequestUri; set an absolute URI such as https://lambda.us-east-1.amazonaws.com/.", parameterName);
        if (!uri.IsAbsoluteUri)
            throw new ArgumentException($"The request URI '{uri}' is relative; signing needs the absolute URI that is sent (scheme, host and path), such as https://lambda.us-east-1.amazonaws.com{(uri.OriginalString.StartsWith('/') ? "" : "/")}{uri.OriginalString}.", parameterName);
        return uri;
    }

    // Removes what an earlier signing added, so that a retried or re-sent request is signed afresh.
    private static void RemoveSignature(HttpRequestMessage request)
    {
        request.Headers.Remove("Authorization");
        request.Headers.Remove("X-Amz-Date");
        request.Headers.Remove("X-Amz-Security-Token");
        request.Headers.Remove("X-Amz-Region-Set");
        if (request.Options.TryGetValue(AddedContentSha256, out bool added) && added)
        {
            request.Headers.Remove("x-amz-content-sha256");
            request.Options.Set(AddedContentSha256, false);
        }
    }

    // What HttpClient sends: header values as written on the wire (multiple values joined as the header's parser
    // joins them). Host is taken separately; Content-Length belongs to the transport and is not signed.
    private static void AddHeaders(List<KeyValuePair<string, string>> list, HttpHeaders headers)
    {
        foreach (var header in headers.NonValidated)
        {
            if (header.Key.Equals("Host", StringComparison.OrdinalIgnoreCase) || header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                continue;
            list.Add(new(header.Key, header.Value.ToString()));
        }
    }

    // Typed, so that request.Headers.Authorization reads it (HttpHeaders cannot parse the value as its own kind of
    // AuthenticationHeaderValue: the credential's '/' is not a token character); written on the wire as given.
    private static void SetAuthorization(HttpRequestHeaders headers, string value)
    {
        int space = value.IndexOf(' ');
        string scheme = value.AsSpan(0, space) is AlgorithmV4 ? AlgorithmV4 : AlgorithmV4a;
        headers.Authorization = new AuthenticationHeaderValue(scheme, value[(space + 1)..]);
    }

    private static string? ValueOf(HttpHeaders headers, string name) =>
        headers.NonValidated.TryGetValues(name, out var values) ? values.ToString().Trim() : null;

    // The Host header HttpClient sends for a URI: the host (IPv6 in brackets, IDN as punycode), and :port unless default.
    internal static string HostHeader(Uri uri)
    {
        string host = uri.HostNameType == UriHostNameType.IPv6 ? "[" + uri.IdnHost.Trim('[', ']') + "]" : uri.IdnHost;
        return uri.IsDefaultPort ? host : host + ":" + uri.Port.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The path and query of <paramref name="uri"/> exactly as HttpClient puts them on the request line, ready for
    /// <see cref="Sign"/>, <see cref="Presign(string, string, string, IReadOnlyList{KeyValuePair{string, string}}, string, DateTimeOffset, TimeSpan, AwsCredentials, SigV4Options)"/>
    /// and <c>SigV4Verifier.Verify</c>: the query is everything after the first <c>?</c>, without it.
    /// </summary>
    /// <exception cref="ArgumentException">The URI is relative.</exception>
    public static (string Path, string Query) SplitPathAndQuery(Uri uri)
    {
        string pathAndQuery = RequireAbsolute(uri, nameof(uri)).PathAndQuery;
        int hash = pathAndQuery.IndexOf('#');
        if (hash >= 0) pathAndQuery = pathAndQuery[..hash];
        int q = pathAndQuery.IndexOf('?');
        return q < 0 ? (pathAndQuery, "") : (pathAndQuery[..q], pathAndQuery[(q + 1)..]);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Helpers.
    // ---------------------------------------------------------------------------------------------------------

    // The X-Amz-* parameters a presigned URL carries. A second X-Amz-Expires (or Credential, Date, ...) in the
    // caller's query would be signed too, and a server that reads the first one would see another expiry.
    internal static readonly string[] PresignParameterNames =
        ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Region-Set"];

    private static void RefusePresignParameters(string query)
    {
        foreach (var part in query.Split('&'))
        {
            int eq = part.IndexOf('=');
            string name = DecodeQueryText(eq < 0 ? part : part[..eq]);
            foreach (var reserved in PresignParameterNames)
            {
                if (!name.Equals(reserved, StringComparison.OrdinalIgnoreCase)) continue;
                throw new ArgumentException(reserved == "X-Amz-Signature"
                    ? "The query already has X-Amz-Signature: the URL is already presigned. Presign the unsigned URL."
                    : $"The query already has {reserved}: presigning adds {string.Join(", ", PresignParameterNames)} itself, and a second one would be signed " +
                      "with it (a server reading the first would see another expiry or credential). Remove it from the query.", nameof(query));
            }
        }
    }

    // A query name or value as the server reads it: '+' is a space, then percent-decoded.
    internal static string DecodeQueryText(string text) => Uri.UnescapeDataString(text.Replace('+', ' '));

    // The value is never shown: it may be a secret.
    private static string ControlCharacterMessage(string name, char control) => control is '\r' or '\n'
        ? $"The value of header '{name}' has a CR or LF character: that would inject a header. Remove line breaks from the value."
        : $"The value of header '{name}' has the control character U+{(int)control:X4}; HTTP allows none in a header value but tab. Remove it from the value.";

    private static bool IsToken(string s) => s.AsSpan().IndexOfAnyExcept(s_tokenChars) < 0;

    private static readonly SearchValues<char> s_tokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    // What HTTP forbids in a header value (RFC 9110 5.5): the C0 controls but tab, and DEL.
    private static readonly SearchValues<char> s_controlCharacters = SearchValues.Create(
        "\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000A\u000B\u000C\u000D\u000E\u000F" +
        "\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F\u007F");
    private static readonly SearchValues<char> s_lowercaseHex = SearchValues.Create("0123456789abcdef");
    private static readonly SearchValues<char> s_unreserved =
        SearchValues.Create("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    private static readonly SearchValues<char> s_unreservedAndSlash =
        SearchValues.Create("-._~/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    // A stable sort in O(n log n): insertion sort for short runs (requests have few headers and parameters), merged
    // in pooled scratch space above that, so that a request with many is no quadratic cost.
    private static void StableSort<T, TComparer>(Span<T> items, TComparer comparer) where TComparer : IComparer<T>
    {
        if (items.Length <= InsertionSortLength)
        {
            InsertionSort(items, comparer);
            return;
        }
        var scratch = ArrayPool<T>.Shared.Rent(items.Length);
        try
        {
            MergeSort(items, scratch.AsSpan(0, items.Length), comparer);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(scratch, clearArray: System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<T>());
        }
    }

    private const int InsertionSortLength = 16;

    private static void MergeSort<T, TComparer>(Span<T> items, Span<T> scratch, TComparer comparer) where TComparer : IComparer<T>
    {
        if (items.Length <= InsertionSortLength)
        {
            InsertionSort(items, comparer);
            return;
        }
        int middle = items.Length / 2;
        MergeSort(items[..middle], scratch[..middle], comparer);
        MergeSort(items[middle..], scratch[middle..], comparer);
        if (comparer.Compare(items[middle - 1], items[middle]) <= 0) return; // already in order: sorted input costs O(n)
        items.CopyTo(scratch);
        int left = 0, right = middle, next = 0;
        while (left < middle && right < items.Length)
            items[next++] = comparer.Compare(scratch[right], scratch[left]) < 0 ? scratch[right++] : scratch[left++];
        scratch[left..middle].CopyTo(items[next..]);
        next += middle - left;
        scratch[right..items.Length].CopyTo(items[next..]);
    }

    private static void InsertionSort<T, TComparer>(Span<T> items, TComparer comparer) where TComparer : IComparer<T>
    {
        for (int i = 1; i < items.Length; i++)
        {
            var item = items[i];
            int j = i - 1;
            while (j >= 0 && comparer.Compare(items[j], item) > 0) { items[j + 1] = items[j]; j--; }
            items[j + 1] = item;
        }
    }

    private static int CompareLowercase(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            int c = ToLowerAscii(a[i]) - ToLowerAscii(b[i]);
            if (c != 0) return c;
        }
        return a.Length - b.Length;
    }

    private static char ToLowerAscii(char c) => c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c;

    private static bool IsHex(char c) => c is >= '0' and <= '9' or >= 'a' and <= 'f' or >= 'A' and <= 'F';

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    // Lowercase hex. Newer runtimes have a vectorized encoder, several times faster than the loop; a signature
    // writes two hashes.
    private static int WriteHex(ReadOnlySpan<byte> bytes, Span<byte> destination)
    {
#if NET10_0_OR_GREATER
        Convert.TryToHexStringLower(bytes, destination, out int written);
        return written;
#else
        for (int i = 0; i < bytes.Length; i++)
        {
            destination[2 * i] = (byte)"0123456789abcdef"[bytes[i] >> 4];
            destination[2 * i + 1] = (byte)"0123456789abcdef"[bytes[i] & 0xF];
        }
        return bytes.Length * 2;
#endif
    }

    internal static string HexString(ReadOnlySpan<byte> bytes)
    {
        Span<byte> hex = stackalloc byte[bytes.Length * 2];
        return Encoding.ASCII.GetString(hex[..WriteHex(bytes, hex)]);
    }

    // A growable byte buffer on pooled arrays, for the canonical request and the encoded query.
    private ref struct ByteBuilder
    {
        private byte[] _buffer;
        public int Length;

        public ByteBuilder(int capacity) { _buffer = ArrayPool<byte>.Shared.Rent(capacity); Length = 0; }

        public readonly ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

        // The array under Written, for comparers that cannot hold a span; valid until the next append.
        public readonly byte[] Buffer => _buffer;

        public void Append(byte b)
        {
            if (Length == _buffer.Length) Grow(1);
            _buffer[Length++] = b;
        }

        public void Append(scoped ReadOnlySpan<byte> bytes)
        {
            if (Length + bytes.Length > _buffer.Length) Grow(bytes.Length);
            bytes.CopyTo(_buffer.AsSpan(Length));
            Length += bytes.Length;
        }

        public void AppendAscii(scoped ReadOnlySpan<char> s)
        {
            if (Length + s.Length > _buffer.Length) Grow(s.Length);
            Length += Encoding.ASCII.GetBytes(s, _buffer.AsSpan(Length));
        }

        // Writes ASCII text over what is written, from `at`.
        public readonly void OverwriteAscii(int at, scoped ReadOnlySpan<char> s) => Encoding.ASCII.GetBytes(s, _buffer.AsSpan(at, s.Length));

        // Copies a part of what is written to the end.
        public void AppendWritten(int start, int length)
        {
            if (Length + length > _buffer.Length) Grow(length);
            _buffer.AsSpan(start, length).CopyTo(_buffer.AsSpan(Length));
            Length += length;
        }

        public void AppendHex(scoped ReadOnlySpan<byte> bytes)
        {
            if (Length + 2 * bytes.Length > _buffer.Length) Grow(2 * bytes.Length);
            Length += WriteHex(bytes, _buffer.AsSpan(Length));
        }

        // Header names are tokens, so ASCII; anything else is written as '?', as Encoding.ASCII writes it.
        public void AppendLowercase(string s)
        {
            if (Length + s.Length > _buffer.Length) Grow(s.Length);
            var destination = _buffer.AsSpan(Length, s.Length);
            if (Ascii.ToLower(s, destination, out _) != OperationStatus.Done)
            {
                Encoding.ASCII.GetBytes(s, destination);
                Ascii.ToLowerInPlace(destination, out _);
            }
            Length += s.Length;
        }

        public void AppendUtf8(scoped ReadOnlySpan<char> s)
        {
            int count = Encoding.UTF8.GetByteCount(s);
            if (Length + count > _buffer.Length) Grow(count);
            Length += Encoding.UTF8.GetBytes(s, _buffer.AsSpan(Length));
        }

        private void Grow(int more)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, Length + more));
            _buffer.AsSpan(0, Length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        public void Dispose() => ArrayPool<byte>.Shared.Return(_buffer);
    }
}

/// <summary>
/// A <see cref="DelegatingHandler"/> that signs every request it sends, afresh on each send, with the credentials
/// its provider gives at that moment: a retried request or a long-lived HttpClient with rotating credentials stays
/// valid. A request may carry its own options under <see cref="OptionsKey"/> (another service or region).
/// </summary>
/// <remarks>
/// <para>Use it directly, <c>new HttpClient(new SigV4Handler(credentials, options))</c>, or register it with
/// IHttpClientFactory, <c>services.AddHttpClient("name").AddHttpMessageHandler(() => new SigV4Handler(credentials, options))</c>.</para>
/// <para>Redirects: no signed header, token or signature ever reaches a host other than the one signed for. On its
/// first send the handler turns off automatic redirects in the <see cref="SocketsHttpHandler"/> or
/// <see cref="HttpClientHandler"/> at the end of its chain (those would forward <c>X-Amz-Security-Token</c> and
/// <c>X-Amz-Date</c> to any host), and follows a redirect itself only to the same scheme, host and port, signing the
/// redirected request afresh; a redirect elsewhere is returned untouched, as the 3xx response. If that handler had
/// redirects off, none are followed. If it has already sent requests, so that the setting can no longer change, the
/// send fails with an <see cref="InvalidOperationException"/>. A custom inner handler that follows redirects itself
/// is not detected: give such a handler redirects off.</para>
/// </remarks>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class SigV4Handler : DelegatingHandler
{
    /// <summary>The request option that overrides the handler's <see cref="SigV4Options"/> for one request.</summary>
    public static readonly HttpRequestOptionsKey<SigV4Options> OptionsKey = new("SigV4Lite.SigV4Options");

    // HttpClientHandler's and SocketsHttpHandler's default limit.
    private const int DefaultMaxRedirects = 50;

    private readonly IAwsCredentialsProvider _credentials;
    private readonly SigV4Options _options;
    private readonly object _firstSend = new();
    private int _maxRedirects = -1; // same-origin redirects to follow; -1 until the first send has looked at the inner handler

    /// <summary>
    /// Creates a handler with no inner handler yet: IHttpClientFactory gives it one (<c>AddHttpMessageHandler</c>);
    /// used directly, it sends through a new <see cref="SocketsHttpHandler"/> that it creates on its first send.
    /// </summary>
    public SigV4Handler(IAwsCredentialsProvider credentials, SigV4Options options)
    {
        _credentials = credentials ?? throw new ArgumentNullException(nameof(credentials));
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Creates a handler that signs and then passes requests to <paramref name="innerHandler"/>.</summary>
    public SigV4Handler(IAwsCredentialsProvider credentials, SigV4Options options, HttpMessageHandler innerHandler)
        : base(innerHandler)
    {
        _credentials = credentials ?? throw new ArgumentNullException(nameof(credentials));
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Signs the request, then sends it; follows a redirect to the same origin, signed afresh.</summary>
    /// <exception cref="InvalidOperationException">The inner handler follows redirects and has already sent
    /// requests, so that this handler cannot turn that off.</exception>
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        int maxRedirects = Volatile.Read(ref _maxRedirects);
        if (maxRedirects < 0) maxRedirects = TakeOverRedirects();
        var response = await SignAndSendAsync(request, cancellationToken).ConfigureAwait(false);
        for (int redirects = 0; redirects < maxRedirects && SameOriginRedirect(request, response) is { } location; redirects++)
        {
            response.Dispose();
            Redirect(request, response.StatusCode, location);
            response = await SignAndSendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        return response;
    }

    private async Task<HttpResponseMessage> SignAndSendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var options = request.Options.TryGetValue(OptionsKey, out var own) ? own : _options;
        var credentials = await _credentials.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
        await SigV4.SignAsync(request, credentials, options, cancellationToken).ConfigureAwait(false);
        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }

    // Once, on the first send: creates the inner handler if there is none, and takes over redirects from the
    // handler at the end of the chain. Returns how many same-origin redirects to follow.
    private int TakeOverRedirects()
    {
        lock (_firstSend)
        {
            if (_maxRedirects >= 0) return _maxRedirects;
            int maxRedirects;
            if (InnerHandler is null)
            {
                InnerHandler = new SocketsHttpHandler { AllowAutoRedirect = false };
                maxRedirects = DefaultMaxRedirects;
            }
            else
                maxRedirects = TurnOffAutoRedirect(InnerHandler);
            Volatile.Write(ref _maxRedirects, maxRedirects);
            return maxRedirects;
        }
    }

    // Also used by AwsClient.cs for a handler it is given (`owner` names who asks, for the message).
    internal static int TurnOffAutoRedirect(HttpMessageHandler handler, string owner = nameof(SigV4Handler))
    {
        while (handler is DelegatingHandler { InnerHandler: { } inner })
            handler = inner;
        try
        {
            switch (handler)
            {
                case SocketsHttpHandler { AllowAutoRedirect: true } sockets:
                    sockets.AllowAutoRedirect = false;
                    return sockets.MaxAutomaticRedirections;
                case HttpClientHandler { AllowAutoRedirect: true } client:
                    client.AllowAutoRedirect = false;
                    return client.MaxAutomaticRedirections;
                default:
                    return 0;
            }
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException(
                $"The {handler.GetType().Name} under {owner} follows redirects (AllowAutoRedirect is true) and has already sent requests, so {owner} " +
                "cannot turn that off: a redirect would carry X-Amz-Security-Token and X-Amz-Date to whatever host it names. Create that handler with " +
                $"AllowAutoRedirect = false, or give {owner} a handler that has not sent yet.", e);
        }
    }

    // The Location of a redirect to the same scheme, host and port as the request; null for any other response.
    private static Uri? SameOriginRedirect(HttpRequestMessage request, HttpResponseMessage response)
    {
        if (response.StatusCode is not (HttpStatusCode.MultipleChoices or HttpStatusCode.MovedPermanently or HttpStatusCode.Found
            or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect))
            return null;
        if (response.Headers.Location is not { } location || request.RequestUri is not { IsAbsoluteUri: true } from)
            return null;
        var to = location.IsAbsoluteUri ? location : new Uri(from, location);
        return Uri.Compare(from, to, UriComponents.SchemeAndServer, UriFormat.UriEscaped, StringComparison.OrdinalIgnoreCase) == 0 ? to : null;
    }

    // As HttpClient redirects: 303, and 301 or 302 after a POST, become a GET without a body; 307 and 308 keep the
    // method and body.
    private static void Redirect(HttpRequestMessage request, HttpStatusCode status, Uri location)
    {
        bool toGet = status == HttpStatusCode.SeeOther ? request.Method != HttpMethod.Get && request.Method != HttpMethod.Head
            : status is HttpStatusCode.MultipleChoices or HttpStatusCode.MovedPermanently or HttpStatusCode.Found && request.Method == HttpMethod.Post;
        if (toGet)
        {
            request.Method = HttpMethod.Get;
            request.Content = null;
            request.Headers.TransferEncodingChunked = false;
        }
        request.RequestUri = location;
    }
}
