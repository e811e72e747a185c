// SigV4Verifier.cs: the server side of SigV4Lite. Decides whether a received request is validly signed (header or
// presigned URL, SigV4 or SigV4a), with the signer's own canonicalization, and says why not in AWS's words.
// Needs SigV4.cs beside it.
#nullable enable

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace SigV4Lite;

/// <summary>Why a request failed verification.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
enum SigV4VerificationError
{
    /// <summary>The request is validly signed.</summary>
    None,
    /// <summary>No <c>Authorization</c> header and no presigned query parameters.</summary>
    MissingAuthentication,
    /// <summary>The signature's parts are missing or malformed (credential, signed headers, date, algorithm).</summary>
    IncompleteSignature,
    /// <summary>The access key id (or its session token) is not known.</summary>
    UnknownAccessKey,
    /// <summary>The signature differs from the one computed from the request.</summary>
    SignatureMismatch,
    /// <summary>The request is outside the allowed clock skew, or the presigned URL has expired.</summary>
    SignatureExpired,
    /// <summary>The credential scope names another date, region, service or terminator.</summary>
    WrongScope,
    /// <summary><c>host</c> or an <c>x-amz-*</c> header that was sent is not signed, or a signed header is missing.</summary>
    UnsignedHeader,
    /// <summary>The <c>x-amz-content-sha256</c> header does not match the body.</summary>
    PayloadHashMismatch,
    /// <summary>The request has more headers, or more text in its path, query and headers, than the verifier's
    /// limits (<see cref="SigV4Verifier.MaxHeaderCount"/>, <see cref="SigV4Verifier.MaxRequestHeadLength"/>).</summary>
    RequestTooLarge,
    /// <summary>The request's <c>Host</c> is not one of <see cref="SigV4Verifier.AllowedHosts"/>: it was signed for
    /// another server.</summary>
    WrongHost,
}

/// <summary>The verdict on one request.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class SigV4VerificationResult
{
    private SigV4VerificationResult(SigV4VerificationError error, string message, string? accessKeyId, string? canonicalRequest, string? stringToSign)
    {
        Error = error;
        Message = message;
        AccessKeyId = accessKeyId;
        CanonicalRequest = canonicalRequest;
        StringToSign = stringToSign;
    }

    /// <summary>Whether the request is validly signed.</summary>
    public bool IsValid => Error == SigV4VerificationError.None;

    /// <summary>Why it is not, or <see cref="SigV4VerificationError.None"/>.</summary>
    public SigV4VerificationError Error { get; }

    /// <summary>The error type an AWS JSON-protocol service answers with (HTTP 403; for
    /// <see cref="SigV4VerificationError.RequestTooLarge"/> HTTP 400 or 431), or an empty string when valid.</summary>
    public string ErrorCode => Error switch
    {
        SigV4VerificationError.None => "",
        SigV4VerificationError.RequestTooLarge => "RequestHeaderSectionTooLarge",
        SigV4VerificationError.MissingAuthentication => "MissingAuthenticationTokenException",
        SigV4VerificationError.IncompleteSignature => "IncompleteSignatureException",
        SigV4VerificationError.UnknownAccessKey => "UnrecognizedClientException",
        _ => "InvalidSignatureException",
    };

    /// <summary>What was wrong, in AWS's words; for a mismatch, with the canonical request and string to sign the
    /// server computed. Never contains a secret.</summary>
    public string Message { get; }

    /// <summary>The access key id the request claimed, if it could be read.</summary>
    public string? AccessKeyId { get; }

    /// <summary>The canonical request computed from the request, when it got that far; a session token in it is
    /// replaced with <c>(session token)</c>.</summary>
    public string? CanonicalRequest { get; }

    /// <summary>The string to sign computed from the request, when it got that far.</summary>
    public string? StringToSign { get; }

    /// <summary>Shows the verdict.</summary>
    public override string ToString() => IsValid ? $"Valid ({AccessKeyId})" : $"{ErrorCode}: {Message}";

    internal static readonly SigV4VerificationResult Missing = new(SigV4VerificationError.MissingAuthentication, "Missing Authentication Token", null, null, null);

    internal static SigV4VerificationResult Valid(string accessKeyId) => new(SigV4VerificationError.None, "", accessKeyId, null, null);

    internal static SigV4VerificationResult Fail(SigV4VerificationError error, string message, string? accessKeyId = null) =>
        new(error, message, accessKeyId, null, null);

    internal static SigV4VerificationResult Mismatch(string accessKeyId, string canonicalRequest, string stringToSign, string? sessionToken)
    {
        // The canonical request holds the session token (as a header, or encoded in a presigned query): a message
        // that clients see and servers log must not.
        canonicalRequest = SigV4.RedactSessionToken(canonicalRequest, sessionToken);
        return new(SigV4VerificationError.SignatureMismatch,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. " +
            "Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'" + canonicalRequest +
            "'\n\nThe String-to-Sign should have been\n'" + stringToSign + "'\n",
            accessKeyId, canonicalRequest, stringToSign);
    }
}

/// <summary>
/// Verifies SigV4 and SigV4a signatures of received requests, for anyone who builds a SigV4-protected service (and for
/// SigV4Lite's own Lambda emulator). It recomputes the signature with the signer's canonicalization and checks the
/// credential scope, the time window, that <c>host</c> and every <c>x-amz-*</c> header sent are signed, and the
/// payload hash. Thread-safe.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class SigV4Verifier
{
    private const string AlgorithmV4 = "AWS4-HMAC-SHA256";
    private const string AlgorithmV4a = "AWS4-ECDSA-P256-SHA256";

    private readonly Func<string, AwsCredentials?> _findCredentials;
    private readonly SigV4Options _options;

    /// <summary>Creates a verifier.</summary>
    /// <param name="findCredentials">Looks up credentials by access key id; null when the key is unknown. Return the
    /// same object for the same key so that its derived keys stay cached.</param>
    /// <param name="options">The service and region requests must be scoped to, and the service's path rules.</param>
    public SigV4Verifier(Func<string, AwsCredentials?> findCredentials, SigV4Options options)
    {
        _findCredentials = findCredentials ?? throw new ArgumentNullException(nameof(findCredentials));
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>How far a header-signed request's X-Amz-Date may be from the server's clock; 15 minutes, as AWS.</summary>
    public TimeSpan AllowedClockSkew { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>The server's clock.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>Whether a session token may be sent unsigned: an <c>X-Amz-Security-Token</c> header left out of
    /// SignedHeaders, or a presigned URL's token added after signing, as a few services (IoT WebSocket handshakes)
    /// take it. Off by default: an unsigned token header is refused like any unsigned <c>x-amz-*</c> header.</summary>
    public bool AllowUnsignedSessionToken { get; init; }

    /// <summary>The most headers a request may have (a repeated name counts once per value); a request with more is
    /// refused before any other work. 200 by default.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is less than 1.</exception>
    public int MaxHeaderCount
    {
        get => _maxHeaderCount;
        init => _maxHeaderCount = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxHeaderCount must be at least 1 (a request needs Host).");
    }

    /// <summary>The most characters a request's path, query, and header names and values may hold together; a request
    /// with more is refused before any other work. 64 KiB by default (more than HTTP servers take: Kestrel reads at
    /// most 32 KB of headers and 8 KB of request line).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is less than 1.</exception>
    public int MaxRequestHeadLength
    {
        get => _maxRequestHeadLength;
        init => _maxRequestHeadLength = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxRequestHeadLength must be at least 1 character.");
    }

    /// <summary>The hosts this server answers to, as clients send them in <c>Host</c>: <c>api.example.com</c>, or
    /// <c>host:port</c> when clients use another port than 80 or 443 (<c>localhost:8080</c>, <c>[::1]:8080</c>); compared
    /// without regard to case, a trailing dot or a default port (:80, :443). Null, the default, takes any host. A
    /// signature covers the host it was made for, so where the same keys are accepted by several servers (staging and
    /// production, say), a request signed for one is refused by the others: <see cref="SigV4VerificationError.WrongHost"/>,
    /// checked right after the size limits.</summary>
    /// <exception cref="ArgumentException">The collection is empty, or holds something that is not a host[:port]
    /// (a URL, a path, a blank).</exception>
    public IReadOnlyCollection<string>? AllowedHosts
    {
        get => _allowedHostList;
        init
        {
            if (value is null)
            {
                (_allowedHosts, _allowedHostList) = (null, null);
                return;
            }
            var hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (string host in value)
                hosts.Add(NormalizeHost(host) ?? throw new ArgumentException(
                    $"AllowedHosts holds '{ScopeText(host ?? "")}', which is not a host or host:port such as api.example.com, localhost:8080 or [::1]:8080 (no scheme, no path).", nameof(value)));
            if (hosts.Count == 0)
                throw new ArgumentException("AllowedHosts must name at least one host (such as api.example.com or localhost:8080); null takes any host.", nameof(value));
            _allowedHosts = hosts;
            _allowedHostList = [.. value];
        }
    }

    // host[:port] as compared: lower case, no trailing dot, no default port; null when the text is not one.
    private static string? NormalizeHost(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.AsSpan().IndexOfAny("/?#@\\ \t") >= 0
            || !Uri.TryCreate("http://" + text.Trim(), UriKind.Absolute, out var uri) || uri.PathAndQuery != "/")
            return null;
        string host = uri.Host.TrimEnd('.').ToLowerInvariant();
        return uri.IsDefaultPort || uri.Port == 443 ? host : host + ":" + uri.Port.ToString(CultureInfo.InvariantCulture);
    }

    private readonly IReadOnlyCollection<string>? _allowedHostList;
    private readonly HashSet<string>? _allowedHosts;
    private readonly int _maxHeaderCount = 200;
    private readonly int _maxRequestHeadLength = 64 * 1024;

    /// <summary>Verifies a received request.</summary>
    /// <param name="method">The HTTP method.</param>
    /// <param name="path">The path exactly as on the request line (still percent-encoded).</param>
    /// <param name="query">The query exactly as on the request line: everything after the first <c>?</c> (a second
    /// <c>?</c> is part of the first parameter's name); empty for none.</param>
    /// <param name="headers">Every header received; repeated names as separate entries.</param>
    /// <param name="body">The body received.</param>
    public SigV4VerificationResult Verify(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(headers);
        var claim = CheckHead(path, query, headers, out var failure);
        return claim is null ? failure! : CheckPayload(claim, headers, body) ?? Recompute(claim, method, path, query);
    }

    /// <summary>Every check of <see cref="Verify"/> that needs neither the body nor the signature's computation: the
    /// limits, the form of the Authorization header or presigned query, the credential scope, the time window, a known
    /// access key (and its session token), and the signed headers. A server calls it before it reads a body, so that
    /// a request that cannot be valid is refused without receiving it; <see cref="Verify"/> still decides.</summary>
    /// <returns>Why the request cannot be valid, or null when it may be.</returns>
    internal SigV4VerificationResult? CheckBeforeBody(string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(headers);
        return CheckHead(path, query, headers, out var failure) is null ? failure : null;
    }

    // Cheap checks first: a request with a wrong scope, time or key costs no hashing of its body or headers.
    private Claim? CheckHead(string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers, out SigV4VerificationResult? failure)
    {
        failure = CheckSize(path, query, headers) ?? CheckHost(headers);
        if (failure is not null) return null;
        var claim = ReadClaim(query, headers, out var unreadable);
        failure = claim is null ? unreadable
            : CheckScope(claim, headers) ?? CheckTime(claim) ?? FindCredentials(claim, headers) ?? CollectSignedHeaders(claim, headers);
        return failure is null ? claim : null;
    }

    // The host the request was signed for (Host is always signed, which CollectSignedHeaders checks) must be this server's.
    private SigV4VerificationResult? CheckHost(IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        if (_allowedHosts is null) return null;
        string? host = Header(headers, "Host");
        // As sent is as configured, usually (the set ignores case): the URI parse that normalizes only for the rest.
        if (host is not null && (_allowedHosts.Contains(host) || NormalizeHost(host) is { } normalized && _allowedHosts.Contains(normalized))) return null;
        // The hosts it does answer to are not told: whoever asks with a made-up Host would learn them.
        return SigV4VerificationResult.Fail(SigV4VerificationError.WrongHost, host is null
            ? "The request has no Host header."
            : $"The request is for host '{ScopeText(host)}', which this server does not answer to.");
    }

    // Limits first: the checks after this one take time in proportion to the request's size.
    private SigV4VerificationResult? CheckSize(string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        if (headers.Count > MaxHeaderCount)
            return SigV4VerificationResult.Fail(SigV4VerificationError.RequestTooLarge,
                $"Your request header section exceeds the maximum allowed size: {headers.Count} headers, at most {MaxHeaderCount}.");
        long length = (long)path.Length + query.Length;
        foreach (var header in headers)
            length += (header.Key?.Length ?? 0) + (header.Value?.Length ?? 0);
        return length <= MaxRequestHeadLength ? null : SigV4VerificationResult.Fail(SigV4VerificationError.RequestTooLarge,
            $"Your request header section exceeds the maximum allowed size: {length} characters of path, query and headers, at most {MaxRequestHeadLength}.");
    }

    // What a request says about its signature, completed by each check that passes.
    private sealed class Claim
    {
        public required bool Presigned { get; init; }
        public required string Algorithm { get; init; }
        public required string Credential { get; init; }
        public required string SignedHeaders { get; init; }
        public required string Signature { get; init; }
        public required string AmzDate { get; init; }
        public string? Expires { get; init; }
        /// <summary>A presigned request's query parameters, by lowercase name.</summary>
        public Dictionary<string, string>? Parameters { get; init; }
        public bool V4a => Algorithm == AlgorithmV4a;

        public DateTimeOffset SignedAt { get; set; }
        public string AccessKeyId { get; set; } = "";
        public SigV4Options Options { get; set; } = null!;
        public KeyValuePair<string, string>[] Signed { get; set; } = [];
        public string PayloadHash { get; set; } = "";
        public AwsCredentials Credentials { get; set; } = null!;
    }

    // Parse: the signature's parts, from the Authorization header or from the X-Amz-* query parameters.
    private static Claim? ReadClaim(string query, IReadOnlyList<KeyValuePair<string, string>> headers, out SigV4VerificationResult failure)
    {
        string? authorization = Header(headers, "Authorization");
        Claim? claim;
        if (authorization is not null && Count(headers, "Authorization") > 1)
        {
            failure = Incomplete("The request has more than one Authorization header; send exactly one.");
            return null;
        }
        if (authorization is not null)
            claim = ReadAuthorization(authorization, headers, out failure);
        else if (ParseQuery(query) is var parameters && parameters.ContainsKey("x-amz-algorithm"))
            claim = ReadPresigned(query, parameters, out failure);
        else
        {
            failure = SigV4VerificationResult.Missing;
            return null;
        }
        if (claim is null) return null;
        if (claim.Algorithm is not (AlgorithmV4 or AlgorithmV4a))
        {
            failure = Incomplete($"Unsupported AWS 'algorithm': '{ScopeText(claim.Algorithm)}'; expected {AlgorithmV4} or {AlgorithmV4a}.");
            return null;
        }
        if (!DateTimeOffset.TryParseExact(claim.AmzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var signedAt))
        {
            failure = Incomplete($"X-Amz-Date '{ScopeText(claim.AmzDate)}' is not an ISO-8601 basic date such as 20150830T123600Z.");
            return null;
        }
        claim.SignedAt = signedAt;
        if (claim.Signature.Length == 0 || claim.Signature.Length % 2 != 0 || claim.Signature.AsSpan().IndexOfAnyExcept(s_lowercaseHex) >= 0
            || (!claim.V4a && claim.Signature.Length != 64))
        {
            failure = Incomplete($"Signature '{ScopeText(claim.Signature)}' must be lowercase hex: {(claim.V4a ? "the DER-encoded ECDSA signature" : "64 digits")}.");
            return null;
        }
        return claim;
    }

    private static readonly System.Buffers.SearchValues<char> s_lowercaseHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    private static Claim? ReadPresigned(string query, Dictionary<string, string> parameters, out SigV4VerificationResult failure)
    {
        if (RepeatedOrMisspelledParameter(query) is { } problem)
        {
            failure = Incomplete(problem);
            return null;
        }
        string? credential = Get(parameters, "x-amz-credential"), signedHeaders = Get(parameters, "x-amz-signedheaders"),
            signature = Get(parameters, "x-amz-signature"), amzDate = Get(parameters, "x-amz-date"), expires = Get(parameters, "x-amz-expires");
        var missing = new List<string>();
        if (credential is null) missing.Add("X-Amz-Credential");
        if (signedHeaders is null) missing.Add("X-Amz-SignedHeaders");
        if (signature is null) missing.Add("X-Amz-Signature");
        if (amzDate is null) missing.Add("X-Amz-Date");
        if (expires is null) missing.Add("X-Amz-Expires");
        failure = Incomplete($"Query-string authentication requires the {string.Join(", ", missing)} parameter(s).");
        return missing.Count > 0 ? null : new Claim
        {
            Presigned = true,
            Algorithm = parameters["x-amz-algorithm"],
            Credential = credential!,
            SignedHeaders = signedHeaders!,
            Signature = signature!,
            AmzDate = amzDate!,
            Expires = expires,
            Parameters = parameters,
        };
    }

    // Each presigning parameter at most once (a second X-Amz-Expires would let a reader see another expiry), and
    // X-Amz-Signature spelled exactly: it is the one parameter left out of the canonical query.
    private static string? RepeatedOrMisspelledParameter(string query)
    {
        Span<int> seen = stackalloc int[SigV4.PresignParameterNames.Length];
        foreach (var pair in query.Split('&'))
        {
            int eq = pair.IndexOf('=');
            string name = SigV4.DecodeQueryText(eq < 0 ? pair : pair[..eq]);
            int index = Array.FindIndex(SigV4.PresignParameterNames, n => n.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (index < 0) continue;
            string expected = SigV4.PresignParameterNames[index];
            if (++seen[index] > 1)
                return $"Query-string authentication takes each X-Amz-* parameter once; {expected} appears more than once.";
            if (expected == "X-Amz-Signature" && name != expected)
                return $"The query parameter '{ScopeText(name)}' must be spelled X-Amz-Signature.";
        }
        return null;
    }

    private static Claim? ReadAuthorization(string authorization, IReadOnlyList<KeyValuePair<string, string>> headers, out SigV4VerificationResult failure)
    {
        int space = authorization.IndexOf(' ');
        string algorithm = space < 0 ? authorization : authorization[..space];
        string? credential = null, signedHeaders = null, signature = null;
        foreach (var part in (space < 0 ? "" : authorization[(space + 1)..]).Split(','))
        {
            var item = part.Trim();
            ref string? component = ref credential;
            string name;
            if (item.StartsWith("Credential=", StringComparison.Ordinal)) name = "Credential";
            else if (item.StartsWith("SignedHeaders=", StringComparison.Ordinal)) { name = "SignedHeaders"; component = ref signedHeaders; }
            else if (item.StartsWith("Signature=", StringComparison.Ordinal)) { name = "Signature"; component = ref signature; }
            else continue;
            if (component is not null)
            {
                failure = Incomplete($"Authorization header has the '{name}' parameter more than once. Authorization={ScopeText(algorithm)}");
                return null;
            }
            component = item[(name.Length + 1)..];
        }
        string? amzDate = Header(headers, "X-Amz-Date");
        var missing = new List<string>();
        if (credential is null) missing.Add("Authorization header requires 'Credential' parameter.");
        if (signedHeaders is null) missing.Add("Authorization header requires 'SignedHeaders' parameter.");
        if (signature is null) missing.Add("Authorization header requires 'Signature' parameter.");
        if (amzDate is null) missing.Add("Authorization header requires existence of a 'X-Amz-Date' header.");
        failure = Incomplete(string.Join(" ", missing) + " Authorization=" + algorithm);
        return missing.Count > 0 ? null : new Claim
        {
            Presigned = false,
            Algorithm = algorithm,
            Credential = credential!,
            SignedHeaders = signedHeaders!,
            Signature = signature!,
            AmzDate = amzDate!,
        };
    }

    // Scope: AKID/date/region/service/aws4_request (SigV4a: no region, and the region set must include this region).
    private SigV4VerificationResult? CheckScope(Claim claim, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var scope = claim.Credential.Split('/');
        if (scope.Length != (claim.V4a ? 4 : 5) || scope[0].Length == 0)
            return Incomplete($"Credential '{ScopeText(claim.Credential)}' is malformed; expected <access key id>/<date>/{(claim.V4a ? "" : "<region>/")}<service>/aws4_request.");
        string accessKeyId = claim.AccessKeyId = scope[0];
        string amzDate = claim.AmzDate;
        if (scope[1] != amzDate[..8])
            return Fail(SigV4VerificationError.WrongScope, $"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope[1]}' != '{amzDate[..8]}', from '{amzDate}'.", accessKeyId);
        if (!claim.V4a && scope[2] != _options.Region)
            return Fail(SigV4VerificationError.WrongScope, $"Credential should be scoped to a valid region, not '{scope[2]}'. ", accessKeyId);
        if (scope[^2] != _options.Service)
            return Fail(SigV4VerificationError.WrongScope, $"Credential should be scoped to correct service: '{_options.Service}'. ", accessKeyId);
        if (scope[^1] != "aws4_request")
            return Fail(SigV4VerificationError.WrongScope, $"Credential should be scoped with a valid terminator: 'aws4_request', not '{scope[^1]}'.", accessKeyId);
        claim.Options = _options;
        return claim.V4a ? CheckRegionSet(claim, headers) : null;
    }

    // SigV4a: the region set travels signed in X-Amz-Region-Set and must include this server's region.
    private SigV4VerificationResult? CheckRegionSet(Claim claim, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        string? regionSet = claim.Presigned ? Get(claim.Parameters!, "x-amz-region-set") : Header(headers, "X-Amz-Region-Set");
        if (regionSet is null)
            return Incomplete("SigV4a requires an X-Amz-Region-Set " + (claim.Presigned ? "parameter." : "header."), claim.AccessKeyId);
        var regions = regionSet.Split(',');
        if (Array.IndexOf(regions, _options.Region) < 0 && Array.IndexOf(regions, "*") < 0)
            return Fail(SigV4VerificationError.WrongScope, $"The region set '{regionSet}' does not include this region '{_options.Region}'.", claim.AccessKeyId);
        claim.Options = new SigV4Options(_options.Service, regionSet)
        {
            Algorithm = SigningAlgorithm.SigV4a,
            NormalizePath = _options.NormalizePath,
            DoubleEncodePath = _options.DoubleEncodePath,
        };
        return null;
    }

    // Time: within the allowed skew of the server's clock; a presigned URL until it expires.
    private SigV4VerificationResult? CheckTime(Claim claim)
    {
        var now = Clock.GetUtcNow();
        string amzDate = claim.AmzDate, accessKeyId = claim.AccessKeyId;
        if (claim.Presigned)
        {
            if (!int.TryParse(claim.Expires, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds < 1)
                return Incomplete($"X-Amz-Expires '{ScopeText(claim.Expires ?? "")}' must be a positive whole number of seconds.", accessKeyId);
            if (seconds > 604800)
                return Incomplete("X-Amz-Expires must be less than a week (in seconds) that is 604800.", accessKeyId);
            if (now > claim.SignedAt.AddSeconds(seconds))
                return Fail(SigV4VerificationError.SignatureExpired, $"Request has expired: signed at {amzDate}, valid for {seconds} seconds, now {Format(now)}.", accessKeyId);
        }
        else if (now - claim.SignedAt > AllowedClockSkew)
            return Fail(SigV4VerificationError.SignatureExpired, $"Signature expired: {amzDate} is now earlier than {Format(now - AllowedClockSkew)} ({Format(now)} - {AllowedClockSkew.TotalMinutes:0} min.)", accessKeyId);
        if (claim.SignedAt - now > AllowedClockSkew)
            return Fail(SigV4VerificationError.SignatureExpired, $"Signature not yet current: {amzDate} is still later than {Format(now + AllowedClockSkew)} ({Format(now)} + {AllowedClockSkew.TotalMinutes:0} min.)", accessKeyId);
        return null;
    }

    // Signed headers: a lower-case, sorted list (as the specification writes it) that names host; every x-amz-*
    // header sent is in it, and every header in it was sent.
    private SigV4VerificationResult? CollectSignedHeaders(Claim claim, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var names = claim.SignedHeaders.Split(';');
        if (!IsLowercaseAndSorted(names))
            return Incomplete($"SignedHeaders '{ScopeText(claim.SignedHeaders)}' must be the signed header names in lower case, sorted and separated by ';', such as host;x-amz-date.", claim.AccessKeyId);
        var signedNames = new HashSet<string>(names, StringComparer.OrdinalIgnoreCase);
        if (!signedNames.Contains("host"))
            return Fail(SigV4VerificationError.UnsignedHeader, "'Host' must be a signed header.", claim.AccessKeyId);
        var signed = new List<KeyValuePair<string, string>>(signedNames.Count + 2);
        var sent = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var header in headers)
        {
            sent.Add(header.Key);
            if (signedNames.Contains(header.Key))
                signed.Add(header);
            else if (header.Key.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase)
                && !(AllowUnsignedSessionToken && header.Key.Equals("x-amz-security-token", StringComparison.OrdinalIgnoreCase)))
                return Fail(SigV4VerificationError.UnsignedHeader, $"The header '{header.Key}' was sent but is not signed; every x-amz-* header must be listed in SignedHeaders.", claim.AccessKeyId);
        }
        foreach (var name in names)
            if (!sent.Contains(name))
                return Fail(SigV4VerificationError.UnsignedHeader, $"SignedHeaders lists '{name}' but the request has no such header.", claim.AccessKeyId);
        claim.Signed = signed.ToArray();
        return null;
    }

    private static bool IsLowercaseAndSorted(string[] names)
    {
        for (int i = 0; i < names.Length; i++)
        {
            if (names[i].Length == 0 || names[i].AsSpan().IndexOfAnyInRange('A', 'Z') >= 0) return false;
            if (i > 0 && string.CompareOrdinal(names[i - 1], names[i]) >= 0) return false;
        }
        return true;
    }

    // Payload: the x-amz-content-sha256 sent must match the body unless it says UNSIGNED-PAYLOAD.
    private SigV4VerificationResult? CheckPayload(Claim claim, IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlySpan<byte> body)
    {
        string bodyHash = SigV4.HashPayload(body);
        claim.PayloadHash = bodyHash;
        if (Header(headers, "x-amz-content-sha256") is { } claimed)
        {
            claimed = claimed.Trim();
            if (claimed == SigV4.UnsignedPayload) claim.PayloadHash = claimed;
            else if (claimed.StartsWith("STREAMING-", StringComparison.Ordinal))
                return Incomplete($"x-amz-content-sha256 '{claimed}': streaming (chunk-signed) payloads are not supported by this verifier.", claim.AccessKeyId);
            else if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(claimed), Encoding.ASCII.GetBytes(bodyHash)))
                return Fail(SigV4VerificationError.PayloadHashMismatch, "The provided 'x-amz-content-sha256' header does not match what was computed.", claim.AccessKeyId);
        }
        else if (claim.Presigned && _options.AddContentSha256Header)
            claim.PayloadHash = SigV4.UnsignedPayload; // presigned S3 URLs sign no payload
        return null;
    }

    // The credentials, and the session token they were issued with.
    private SigV4VerificationResult? FindCredentials(Claim claim, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var credentials = _findCredentials(claim.AccessKeyId);
        if (credentials is null)
            return Fail(SigV4VerificationError.UnknownAccessKey, "The security token included in the request is invalid.", claim.AccessKeyId);
        if (credentials.SessionToken is { } token)
        {
            string? sent = (claim.Presigned ? Get(claim.Parameters!, "x-amz-security-token") : null) ?? Header(headers, "X-Amz-Security-Token");
            if (sent is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(sent), Encoding.UTF8.GetBytes(token)))
                return Fail(SigV4VerificationError.UnknownAccessKey, "The security token included in the request is invalid.", claim.AccessKeyId);
        }
        claim.Credentials = credentials;
        return null;
    }

    // Recompute: the signature of exactly the request received (for a presigned URL, less X-Amz-Signature), with
    // the signer's canonicalization.
    private SigV4VerificationResult Recompute(Claim claim, string method, string path, string query)
    {
        var request = new CanonicalRequestInput(method, path, claim.Presigned ? WithoutParameter(query, "X-Amz-Signature") : query,
            claim.Signed, claim.PayloadHash, claim.AmzDate, claim.Options);
        if (SigV4.SignatureMatches(request, claim.Credentials, claim.Signature))
            return SigV4VerificationResult.Valid(claim.AccessKeyId);
        // A session token may be added to a presigned URL after signing (IoT WebSocket handshakes): the server
        // cannot tell from the URL, so a mismatch is checked once more without it.
        if (AllowUnsignedSessionToken && claim.Presigned && claim.Credentials.SessionToken is not null && Get(claim.Parameters!, "x-amz-security-token") is not null
            && SigV4.SignatureMatches(request with { Query = WithoutParameter(request.Query, "X-Amz-Security-Token") }, claim.Credentials, claim.Signature))
            return SigV4VerificationResult.Valid(claim.AccessKeyId);
        var (canonicalRequest, stringToSign) = SigV4.Describe(request, claim.AccessKeyId);
        return SigV4VerificationResult.Mismatch(claim.AccessKeyId, canonicalRequest, stringToSign, claim.Credentials.SessionToken);
    }

    // The query without the parameter of this name (as the server reads names: decoded, exact case).
    private static string WithoutParameter(string query, string name)
    {
        var kept = new StringBuilder(query.Length);
        foreach (var pair in query.Split('&'))
        {
            int eq = pair.IndexOf('=');
            if (SigV4.DecodeQueryText(eq < 0 ? pair : pair[..eq]) == name) continue;
            if (kept.Length > 0) kept.Append('&');
            kept.Append(pair);
        }
        return kept.ToString();
    }

    private static SigV4VerificationResult Incomplete(string message, string? accessKeyId = null) =>
        SigV4VerificationResult.Fail(SigV4VerificationError.IncompleteSignature, message, accessKeyId);

    private static SigV4VerificationResult Fail(SigV4VerificationError error, string message, string accessKeyId) =>
        SigV4VerificationResult.Fail(error, message, accessKeyId);

    private static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);

    // A malformed credential is echoed back with its parts, but cut short: it is the caller's text, not a secret.
    // Text the request gave, quoted in a message that may be logged: its first 128 characters, with control characters
    // shown as \uXXXX (a CR LF in a query value must not start a line of the log).
    private static string ScopeText(string text)
    {
        var clipped = text.Length <= 128 ? text : text[..128];
        if (clipped.AsSpan().IndexOfAnyInRange('\u0000', '\u001f') < 0 && !clipped.Contains('\u007f'))
            return clipped.Length == text.Length ? text : clipped + "...";
        var escaped = new StringBuilder(clipped.Length + 16);
        foreach (char c in clipped)
            if (c < ' ' || c == '\u007f') escaped.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            else escaped.Append(c);
        return clipped.Length == text.Length ? escaped.ToString() : escaped.Append("...").ToString();
    }

    // The values of a header, joined with ',' (in one pass: a name repeated many times costs no quadratic copying).
    private static string? Header(IReadOnlyList<KeyValuePair<string, string>> headers, string name)
    {
        string? first = null;
        StringBuilder? joined = null;
        foreach (var header in headers)
        {
            if (!header.Key.Equals(name, StringComparison.OrdinalIgnoreCase)) continue;
            if (first is null) first = header.Value;
            else (joined ??= new StringBuilder(first)).Append(',').Append(header.Value);
        }
        return joined?.ToString() ?? first;
    }

    private static int Count(IReadOnlyList<KeyValuePair<string, string>> headers, string name)
    {
        int count = 0;
        foreach (var header in headers)
            if (header.Key.Equals(name, StringComparison.OrdinalIgnoreCase)) count++;
        return count;
    }

    // The query's parameters by lowercase name, decoded as the canonicalization reads them ('+' is a space).
    private static Dictionary<string, string> ParseQuery(string query)
    {
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=');
            string name = SigV4.DecodeQueryText(eq < 0 ? pair : pair[..eq]).ToLowerInvariant();
            parameters.TryAdd(name, eq < 0 ? "" : SigV4.DecodeQueryText(pair[(eq + 1)..]));
        }
        return parameters;
    }

    private static string? Get(Dictionary<string, string> parameters, string name) =>
        parameters.TryGetValue(name, out var value) ? value : null;
}
