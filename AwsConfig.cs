// AwsConfig.cs: finds credentials, the region and custom endpoints where the AWS SDKs find them, for SigV4Lite.
// Builds on SigV4.cs (which stands alone and never refers to this file). BCL only, AOT and trimming safe. With
// AwsClient.cs in the same compilation, the calls the chain makes (STS, the SSO portal and OIDC) go through its send
// pipeline (retried, errors read as AWS writes them); without it, this file works alone and sends each call once.
//
//   IAwsCredentialsProvider credentials = AwsCredentialsChain.CreateDefault();   // env, web identity, profile, container, IMDS
//   string region = AwsRegion.Resolve();                                          // AWS_REGION, AWS_DEFAULT_REGION, profile
//   Uri? endpoint = AwsEndpoint.Resolve("Lambda");                                // AWS_ENDPOINT_URL_LAMBDA, ..., or null
//
// The file reads top-down: the public entry points (options, errors, region, endpoint, the chain), then the links of
// the chain (environment, web identity, profile, container, instance metadata), then what they share: the context
// (environment, clock, files), the INI parser of the shared config files, the STS client, credential_process, IAM
// Identity Center (SSO: the profile forms, the token cache of `aws sso login`, SSO OIDC token refresh, the SSO portal),
// the JSON and HTTP helpers.
#nullable enable

using System;
using System.Buffers;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace SigV4Lite;

/// <summary>
/// Where the resolvers look: the environment, the clock, the home directory and the service endpoints of the
/// credential sources. The defaults are the real ones; tests and unusual hosts replace them.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsConfigOptions
{
    /// <summary>Reads an environment variable; <see cref="Environment.GetEnvironmentVariable(string)"/> by default.</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>The clock that decides when temporary credentials are refreshed, and signs STS calls.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>The profile to use; null reads <c>AWS_PROFILE</c>, then uses <c>default</c>. Set here, it is an explicit
    /// choice, as the CLI's <c>--profile</c>: the default credentials chain then skips the environment's keys
    /// (<c>AWS_ACCESS_KEY_ID</c>...) and web identity variables, which come first when the profile comes from
    /// <c>AWS_PROFILE</c>.</summary>
    /// <exception cref="ArgumentException">The name is empty or blank.</exception>
    public string? Profile
    {
        get => _profile;
        init => _profile = value is null || !string.IsNullOrWhiteSpace(value) ? value
            : throw new ArgumentException("Profile must name a profile (such as production), or be null to read AWS_PROFILE; it was empty or blank.", nameof(value));
    }

    private readonly string? _profile;

    /// <summary>The directory holding <c>.aws/config</c> and <c>.aws/credentials</c>; null reads <c>HOME</c> (or <c>USERPROFILE</c>).</summary>
    public string? HomeDirectory { get; init; }

    /// <summary>The STS endpoint for AssumeRole and AssumeRoleWithWebIdentity; null uses the configured or regional one.</summary>
    /// <exception cref="ArgumentException">The value is not an absolute http or https URL without a query and without user-info.</exception>
    public Uri? StsEndpoint
    {
        get => _stsEndpoint;
        init => _stsEndpoint = value is null ? null : AwsEndpoint.Check(value, nameof(StsEndpoint));
    }

    private readonly Uri? _stsEndpoint;

    /// <summary>The base of <c>AWS_CONTAINER_CREDENTIALS_RELATIVE_URI</c>; null uses <c>http://169.254.170.2</c>.</summary>
    public Uri? ContainerCredentialsEndpoint { get; init; }

    /// <summary>The EC2 instance metadata endpoint; null reads <c>AWS_EC2_METADATA_SERVICE_ENDPOINT</c>, then uses <c>http://169.254.169.254</c>.</summary>
    public Uri? InstanceMetadataEndpoint { get; init; }

    // The same options on another clock (a client's clock reaches the credentials chain it makes).
    internal AwsConfigOptions WithClock(TimeProvider clock) => ReferenceEquals(clock, Clock) ? this : new AwsConfigOptions
    {
        GetEnvironmentVariable = GetEnvironmentVariable,
        Clock = clock,
        Profile = Profile,
        HomeDirectory = HomeDirectory,
        StsEndpoint = StsEndpoint,
        ContainerCredentialsEndpoint = ContainerCredentialsEndpoint,
        InstanceMetadataEndpoint = InstanceMetadataEndpoint,
    };
}

/// <summary>
/// The base of every failure SigV4Lite raises when it finds configuration or credentials or calls AWS: one
/// <c>catch (AwsException)</c> sees them all. <see cref="AwsConfigurationException"/> and
/// <see cref="AwsCredentialsException"/> derive from it here; with the send pipeline (AwsClient.cs), so do the service's
/// error answers, timeouts and connection failures. Bad arguments are <see cref="ArgumentException"/>s instead (a bug in
/// the caller, not a failure), and a cancellation the caller asked for stays an <see cref="OperationCanceledException"/>.
/// Messages never hold a secret.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
class AwsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AwsException(string message, Exception? innerException = null) : base(message, innerException) { }
}

/// <summary>
/// The configuration is wrong: a malformed config file, a missing profile, a role chain loop, an invalid environment
/// variable. The message names the file and line, the variable or the profile, never a secret.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsConfigurationException : AwsException
{
    internal AwsConfigurationException(string message, string? filePath = null, int? lineNumber = null, string? profileName = null, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
        LineNumber = lineNumber;
        ProfileName = profileName;
    }

    /// <summary>The file at fault, when a file is.</summary>
    public string? FilePath { get; }

    /// <summary>The 1-based line at fault in <see cref="FilePath"/>, when one is.</summary>
    public int? LineNumber { get; }

    /// <summary>The profile at fault, when one is.</summary>
    public string? ProfileName { get; }
}

/// <summary>
/// Credentials could not be obtained: none were found, or a source failed (STS refused, credential_process failed,
/// the metadata service did not answer). The message says where it looked and what failed, never a secret.
/// </summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsCredentialsException : AwsException
{
    internal AwsCredentialsException(string message, string? profileName = null, Exception? innerException = null)
        : base(message, innerException) => ProfileName = profileName;

    /// <summary>The profile whose credentials failed, when the source is a profile.</summary>
    public string? ProfileName { get; }
}

/// <summary>Resolves the region as the AWS SDKs do.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
static class AwsRegion
{
    /// <summary>
    /// Returns the region: <paramref name="configured"/> when given, else <c>AWS_REGION</c>, else
    /// <c>AWS_DEFAULT_REGION</c>, else the profile's <c>region</c> in the shared config files.
    /// </summary>
    /// <param name="configured">The region set in code, or null.</param>
    /// <param name="options">Where to look; null for the real environment.</param>
    /// <exception cref="AwsConfigurationException">No region is set (the message says where it looked), or one is malformed.</exception>
    /// <exception cref="ArgumentException"><paramref name="configured"/> is not a region name.</exception>
    public static string Resolve(string? configured = null, AwsConfigOptions? options = null)
    {
        if (configured is not null)
        {
            if (!IsValid(configured))
                throw new ArgumentException($"The region '{configured}' is not a region name; give one such as us-east-1.", nameof(configured));
            return configured;
        }
        var looked = new StringBuilder();
        return Find(new AwsConfigContext(options), looked)
            ?? throw new AwsConfigurationException(
                "No AWS region is set. Looked at: the code (none given)" + looked +
                ". Set AWS_REGION, add 'region = us-east-1' (for example) to the profile, or give the region in code.");
    }

    // The region from the environment or the profile, or null; `looked` collects where it looked, for the error.
    internal static string? Find(AwsConfigContext context, StringBuilder? looked)
    {
        foreach (var name in new[] { "AWS_REGION", "AWS_DEFAULT_REGION" })
        {
            if (context.Env(name) is { } value)
                return IsValid(value) ? value
                    : throw new AwsConfigurationException($"The environment variable {name} ('{value}') is not a region name; set it to one such as us-east-1.");
            looked?.Append(", ").Append(name).Append(" (not set)");
        }
        var profile = context.Files.FindProfile(context.ProfileName, context.ProfileSelectedBy);
        if (profile?.Get("region") is { } region)
            return IsValid(region.Text) ? region.Text
                : throw new AwsConfigurationException($"The region of profile '{profile.Name}' ({region.Where}) is not a region name; write one such as us-east-1.",
                    region.File, region.Line, profile.Name);
        looked?.Append(", profile '").Append(context.ProfileName).Append(profile is null ? "' (no such profile)" : "' (no region)")
            .Append(" in ").Append(context.Files.Describe());
        return null;
    }

    // Region names go into host names: letters, digits and hyphens only, so that no value can redirect a request.
    internal static bool IsValid(string region)
    {
        if (region.Length is 0 or > 64 || region[0] == '-' || region[^1] == '-') return false;
        foreach (char c in region)
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-')) return false; // region names are lowercase
        return true;
    }
}

/// <summary>Resolves a custom endpoint URL for a service as the AWS SDKs do.</summary>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
static class AwsEndpoint
{
    /// <summary>
    /// Returns the endpoint set for the service, or null when none is (use the service's regional endpoint).
    /// Precedence: <paramref name="configured"/>, <c>AWS_ENDPOINT_URL_&lt;SERVICE&gt;</c>, <c>AWS_ENDPOINT_URL</c>,
    /// the profile's <c>services</c> section, the profile's <c>endpoint_url</c>. <c>AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true</c>
    /// (or <c>ignore_configured_endpoint_urls = true</c> in the profile) leaves only <paramref name="configured"/>.
    /// </summary>
    /// <param name="serviceId">The service id of the service model, such as <c>Lambda</c> or <c>STS</c>: upper-cased with spaces as
    /// underscores for the environment variable (<c>AWS_ENDPOINT_URL_LAMBDA</c>), lower-cased for the config file (<c>lambda</c>).</param>
    /// <param name="configured">The endpoint set in code, or null.</param>
    /// <param name="options">Where to look; null for the real environment.</param>
    /// <exception cref="AwsConfigurationException">An endpoint in the environment or the config files is not an absolute
    /// http or https URL without a query and without user-info (the message names where it is set).</exception>
    /// <exception cref="ArgumentException"><paramref name="configured"/> is not an absolute http or https URL without a
    /// query and without user-info.</exception>
    public static Uri? Resolve(string serviceId, Uri? configured = null, AwsConfigOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(serviceId);
        return configured is not null ? Check(configured, nameof(configured)) : Find(serviceId, new AwsConfigContext(options));
    }

    // An endpoint set in code, returned when valid.
    internal static Uri Check(Uri configured, string parameterName)
    {
        if (!IsUrlWithoutQuery(configured))
            throw new ArgumentException($"The endpoint '{UriText.Show(configured)}' must be an absolute http or https URL without a query, such as https://lambda.us-east-1.amazonaws.com.", parameterName);
        if (configured.UserInfo.Length > 0)
            throw new ArgumentException($"The endpoint '{UriText.Show(configured)}' has {UserInfoProblem}", parameterName);
        return configured;
    }

    /// <summary>
    /// The regional endpoint of a service by the partition rules: <c>https://{prefix}.{region}.{suffix}/</c>, with the
    /// partition's DNS suffix (aws, aws-cn, aws-us-gov, the ISO partitions, aws-eusc), optionally FIPS
    /// (<c>{prefix}-fips</c>) and dual-stack (the partition's dual-stack suffix).
    /// </summary>
    /// <param name="endpointPrefix">The service's endpoint prefix, such as <c>lambda</c> or <c>sts</c>.</param>
    /// <param name="region">The region, such as <c>us-east-1</c>.</param>
    /// <param name="fips">Whether to use the FIPS endpoint.</param>
    /// <param name="dualStack">Whether to use the dual-stack (IPv4 and IPv6) endpoint.</param>
    /// <exception cref="ArgumentException">The region is not a region name, or its partition has no dual-stack endpoint.</exception>
    public static Uri ForRegion(string endpointPrefix, string region, bool fips = false, bool dualStack = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpointPrefix);
        if (!AwsRegion.IsValid(region))
            throw new ArgumentException($"The region '{region}' is not a region name; give one such as us-east-1 (lowercase letters, digits and hyphens).", nameof(region));
        (string Partition, string Suffix, string? DualStackSuffix) partition =
            region.StartsWith("cn-", StringComparison.Ordinal) ? ("aws-cn", "amazonaws.com.cn", "api.amazonwebservices.com.cn")
            : region.StartsWith("us-gov-", StringComparison.Ordinal) ? ("aws-us-gov", "amazonaws.com", "api.aws")
            : region.StartsWith("us-isob-", StringComparison.Ordinal) ? ("aws-iso-b", "sc2s.sgov.gov", null)
            : region.StartsWith("us-isof-", StringComparison.Ordinal) ? ("aws-iso-f", "csp.hci.ic.gov", null)
            : region.StartsWith("us-iso-", StringComparison.Ordinal) ? ("aws-iso", "c2s.ic.gov", null)
            : region.StartsWith("eu-isoe-", StringComparison.Ordinal) ? ("aws-iso-e", "cloud.adc-e.uk", null)
            : region.StartsWith("eusc-", StringComparison.Ordinal) ? ("aws-eusc", "amazonaws.eu", null)
            : ("aws", "amazonaws.com", "api.aws");
        string suffix = !dualStack ? partition.Suffix
            : partition.DualStackSuffix ?? throw new ArgumentException($"The {partition.Partition} partition (region {region}) has no dual-stack endpoint; turn dual-stack off or give an endpoint URL.", nameof(dualStack));
        return new Uri($"https://{endpointPrefix}{(fips ? "-fips" : "")}.{region}.{suffix}/");
    }

    internal static Uri? Find(string serviceId, AwsConfigContext context)
    {
        const string IgnoreVariable = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS";
        string envName = "AWS_ENDPOINT_URL_" + serviceId.Trim().Replace(' ', '_').ToUpperInvariant();
        bool? ignore = context.EnvBool(IgnoreVariable);
        if (ignore == true) return null;

        // The profile can also say "ignore", which silences the environment variables too: read it only when needed.
        IniSection? profile = null;
        bool profileRead = false;
        IniSection? Profile()
        {
            if (!profileRead) { profile = context.Files.FindProfile(context.ProfileName, context.ProfileSelectedBy); profileRead = true; }
            return profile;
        }
        if (ignore is null && Profile()?.Get("ignore_configured_endpoint_urls") is { } flag
            && ParseBool(flag.Text, $"ignore_configured_endpoint_urls ({flag.Where})", flag))
            return null;

        foreach (var name in new[] { envName, "AWS_ENDPOINT_URL" })
            if (context.Env(name) is { } value)
                return ParseUrl(value, $"The environment variable {name}", null, null);

        if (Profile() is not { } p) return null;
        if (p.Get("services") is { } servicesName)
        {
            var services = context.Files.FindServices(servicesName.Text)
                ?? throw new AwsConfigurationException(
                    $"Profile '{p.Name}' names services '{servicesName.Text}' ({servicesName.Where}), but there is no [services {servicesName.Text}] section in {context.Files.Describe()}.",
                    servicesName.File, servicesName.Line, p.Name);
            string key = serviceId.Trim().Replace(' ', '_').ToLowerInvariant();
            if (services.Get(key) is { } block && block.SubValue("endpoint_url") is { } url)
                return ParseUrl(url, $"The endpoint_url of {key} in [services {services.Name}] ({block.Where})", block, p.Name);
        }
        return p.Get("endpoint_url") is { } global
            ? ParseUrl(global.Text, $"The endpoint_url of profile '{p.Name}' ({global.Where})", global, p.Name)
            : null;
    }

    private static Uri ParseUrl(string value, string where, IniValue? at, string? profile)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || !IsUrlWithoutQuery(uri))
            throw new AwsConfigurationException($"{where} is '{UriText.Show(value)}', which is not an absolute http or https URL without a query; write one such as http://localhost:4566.",
                at?.File, at?.Line, profile);
        if (uri.UserInfo.Length > 0)
            throw new AwsConfigurationException($"{where} is '{UriText.Show(uri)}' with {UserInfoProblem}", at?.File, at?.Line, profile);
        return uri;
    }

    // The API's path and query go after an endpoint (a path of its own is kept as a prefix): it can have no query.
    private static bool IsUrlWithoutQuery(Uri uri) =>
        uri.IsAbsoluteUri && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && uri.Query.Length == 0;

    // User-info in an endpoint is refused wherever it is set: it may hold a secret that would then show wherever the
    // endpoint is shown, and it means nothing to AWS.
    private const string UserInfoProblem =
        "user-info (user:password@ before the host), which AWS endpoints never take: requests are signed, and HttpClient sends no credentials taken from a URL. Remove it.";

    internal static bool ParseBool(string value, string where, IniValue? at)
    {
        if (value.Equals("true", StringComparison.OrdinalIgnoreCase)) return true;
        if (value.Equals("false", StringComparison.OrdinalIgnoreCase)) return false;
        throw new AwsConfigurationException($"{where} must be true or false (it is '{value}').", at?.File, at?.Line);
    }
}

/// <summary>
/// The default credentials chain of the AWS SDKs: the first source that is configured provides the credentials, and
/// stays the source. Order: environment variables (<c>AWS_ACCESS_KEY_ID</c>, <c>AWS_SECRET_ACCESS_KEY</c>,
/// <c>AWS_SESSION_TOKEN</c>); a web identity token file (<c>AWS_WEB_IDENTITY_TOKEN_FILE</c>, <c>AWS_ROLE_ARN</c>);
/// the profile in the shared config and credentials files (static keys, <c>role_arn</c> with <c>source_profile</c> or
/// <c>credential_source</c>, <c>credential_process</c>, IAM Identity Center with <c>sso_session</c> or
/// <c>sso_start_url</c> and the token <c>aws sso login</c> cached); container credentials; EC2 instance metadata (IMDSv2).
/// Credentials set in code come before all of these: use them instead of the chain. A profile set in code
/// (<see cref="AwsConfigOptions.Profile"/>) is an explicit choice, as the CLI's <c>--profile</c>: the chain then starts
/// at the profile, without the environment variables and the web identity token file.
/// </summary>
/// <remarks>
/// Nothing is read until the first <see cref="GetCredentialsAsync"/>; with the environment variables set (as in
/// Lambda) and no profile set in code, that call reads no file and makes no network call. Temporary credentials are refreshed when less than
/// 5 minutes remain, by one refresh in the background while callers keep the still-valid set; they are not handed
/// out in their last 15 seconds. A failed refresh keeps the valid set and tries again 30 seconds later.
/// </remarks>
#if SIGV4LITE_PUBLIC
public
#else
internal
#endif
sealed class AwsCredentialsChain : IAwsCredentialsProvider
{
    internal static readonly TimeSpan RefreshWindow = TimeSpan.FromMinutes(5);
    internal static readonly TimeSpan ExpiryMargin = TimeSpan.FromSeconds(15);
    internal static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(30);

    private readonly CredentialSource[] _sources;
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private Cached? _cached;
    private Task<AwsCredentials>? _refresh;
    private CredentialSource? _selected;

    internal AwsCredentialsChain(TimeProvider clock, params CredentialSource[] sources)
    {
        _clock = clock;
        _sources = sources;
    }

    /// <summary>Creates the default chain. Reads nothing yet.</summary>
    /// <param name="options">Where to look; null for the real environment.</param>
    public static AwsCredentialsChain CreateDefault(AwsConfigOptions? options = null) => ForContext(new AwsConfigContext(options));

    // A profile set in code is the caller's explicit choice: as botocore's Session(profile=...) and the CLI's --profile,
    // the chain then skips the environment's keys and web identity variables, which would otherwise come first (as they
    // do with AWS_PROFILE) and quietly sign as someone else.
    internal static AwsCredentialsChain ForContext(AwsConfigContext context) =>
        context.Options.Profile is not null
            ? new AwsCredentialsChain(context.Clock, new ProfileSource(context), new ContainerSource(context), new InstanceMetadataSource(context))
            : new AwsCredentialsChain(context.Clock, new EnvironmentSource(context), new WebIdentitySource(context), new ProfileSource(context),
                new ContainerSource(context), new InstanceMetadataSource(context));

    /// <summary>Which source provided the credentials, such as <c>environment variables</c> or <c>profile 'dev'</c>; null before the first call.</summary>
    public string? Source => Volatile.Read(ref _selected)?.Name;

    /// <summary>Returns credentials that are valid now, loading or refreshing them when needed.</summary>
    /// <exception cref="AwsCredentialsException">No source has credentials, or the source failed.</exception>
    /// <exception cref="AwsConfigurationException">The configuration is wrong (the message names the file, line, variable or profile).</exception>
    public ValueTask<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken = default)
    {
        var cached = Volatile.Read(ref _cached);
        if (cached is not null)
        {
            var now = _clock.GetUtcNow();
            if (now < cached.RefreshAt) return new(cached.Credentials);
            if (now < cached.UsableUntil)
            {
                _ = EnsureRefresh(); // one refresh, in the background; these are still good meanwhile
                return new(cached.Credentials);
            }
        }
        return new(EnsureRefresh().WaitAsync(cancellationToken));
    }

    // For tests: the refresh in flight, if any (a background refresh that fails with valid credentials left completes normally).
    internal Task PendingRefresh
    {
        get { lock (_gate) return _refresh ?? Task.CompletedTask; }
    }

    // The refresh in flight, or a new one. A refresh runs on its own, not on any caller's token: one caller giving
    // up must not fail the others waiting for it.
    private Task<AwsCredentials> EnsureRefresh()
    {
        lock (_gate)
        {
            if (_refresh is null || _refresh.IsCompleted)
            {
                // Another caller's refresh may have finished since this caller looked.
                if (_cached is { } cached && _clock.GetUtcNow() < cached.RefreshAt) return Task.FromResult(cached.Credentials);
                var refresh = Task.Run(() => RefreshAsync());
                _ = refresh.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                _refresh = refresh;
            }
            return _refresh;
        }
    }

    private async Task<AwsCredentials> RefreshAsync()
    {
        var previous = Volatile.Read(ref _cached);
        try
        {
            var credentials = await LoadAsync().ConfigureAwait(false);
            var now = _clock.GetUtcNow();
            // Never handed out in their last 15 seconds: a request signed with them could reach AWS after they expire.
            // (now + margin, not expiration - margin: an expiration of 0001-01-01 has nothing before it.)
            if (credentials.Expiration is { } expiration && expiration <= now + ExpiryMargin)
                throw new AwsCredentialsException(
                    $"The credentials from {_selected?.Name} (access key id {credentials.AccessKeyId}) " + (expiration <= now
                        ? $"expired at {expiration.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}, before they could be used"
                        : $"expire at {expiration.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}, less than {ExpiryMargin.TotalSeconds:0} seconds from now ({now.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}): too late to be used") +
                    "; check this machine's clock.");
            Volatile.Write(ref _cached, Cached.For(credentials, now));
            return credentials;
        }
        catch (Exception) when (previous is not null && _clock.GetUtcNow() < previous.UsableUntil)
        {
            // Keep the still-valid credentials and try again a little later, at the latest when they must be replaced.
            var retryAt = _clock.GetUtcNow() + RetryDelay;
            Volatile.Write(ref _cached, previous with { RefreshAt = retryAt < previous.UsableUntil ? retryAt : previous.UsableUntil });
            return previous.Credentials;
        }
    }

    private async ValueTask<AwsCredentials> LoadAsync()
    {
        if (_selected is { } selected)
        {
            var again = await selected.LoadAsync(CancellationToken.None).ConfigureAwait(false);
            return again.Credentials ?? throw new AwsCredentialsException($"The {selected.Name} gave credentials before, but not now: {again.Missing}.");
        }
        var looked = new StringBuilder();
        foreach (var source in _sources)
        {
            var loaded = await source.LoadAsync(CancellationToken.None).ConfigureAwait(false);
            if (loaded.Credentials is { } credentials)
            {
                Volatile.Write(ref _selected, source);
                return credentials;
            }
            looked.Append("\n  - ").Append(loaded.Missing);
        }
        throw new AwsCredentialsException(
            "No AWS credentials were found. Looked at, in order:" + looked +
            "\nSet AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure a profile in the shared config files (AWS_PROFILE selects it), or give credentials in code.");
    }

    private sealed record Cached(AwsCredentials Credentials, DateTimeOffset RefreshAt, DateTimeOffset UsableUntil)
    {
        public static Cached For(AwsCredentials credentials, DateTimeOffset now)
        {
            if (credentials.Expiration is not { } expiration) return new(credentials, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue);
            var usableUntil = expiration - ExpiryMargin;
            var refreshAt = expiration - RefreshWindow;
            // Short-lived credentials would otherwise be refreshed on every call.
            if (refreshAt < now + RetryDelay) refreshAt = now + RetryDelay < usableUntil ? now + RetryDelay : usableUntil;
            return new(credentials, refreshAt, usableUntil);
        }

        public override string ToString() => $"Cached {{ {Credentials}, RefreshAt = {RefreshAt:u} }}";
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The links of the chain. Each one either has credentials, is not configured (Missing says what it looked at, for
// the chain's error), or throws because it is configured but wrong or failing.
// ---------------------------------------------------------------------------------------------------------------

internal readonly record struct Loaded(AwsCredentials? Credentials, string? Missing)
{
    public static Loaded NotFound(string what) => new(null, what);
}

internal abstract class CredentialSource
{
    public abstract string Name { get; }

    public abstract ValueTask<Loaded> LoadAsync(CancellationToken cancellationToken);
}

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: what Lambda sets, so this link reads nothing else.
internal sealed class EnvironmentSource(AwsConfigContext context) : CredentialSource
{
    public override string Name => "environment variables";

    public override ValueTask<Loaded> LoadAsync(CancellationToken cancellationToken) => new(Load());

    public Loaded Load()
    {
        string? id = context.Env("AWS_ACCESS_KEY_ID"), secret = context.Env("AWS_SECRET_ACCESS_KEY");
        if (id is null && secret is null)
            return Loaded.NotFound("environment variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
        if (id is null || secret is null)
            throw new AwsConfigurationException(
                $"The environment variable {(id is null ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID")} is set but {(id is null ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY")} is not; set both, or neither.");
        try
        {
            return new(new AwsCredentials(id, secret, context.Env("AWS_SESSION_TOKEN")), null);
        }
        catch (ArgumentException e)
        {
            throw new AwsConfigurationException($"The credentials in the environment variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are malformed: {e.Message}", innerException: e);
        }
    }
}

// AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (EKS service accounts and the like): STS AssumeRoleWithWebIdentity.
internal sealed class WebIdentitySource(AwsConfigContext context) : CredentialSource
{
    public override string Name => "web identity token file";

    public override async ValueTask<Loaded> LoadAsync(CancellationToken cancellationToken)
    {
        string? tokenFile = context.Env("AWS_WEB_IDENTITY_TOKEN_FILE"), roleArn = context.Env("AWS_ROLE_ARN");
        if (tokenFile is null && roleArn is null)
            return Loaded.NotFound("web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set");
        if (tokenFile is null || roleArn is null)
            throw new AwsConfigurationException(
                $"The environment variable {(tokenFile is null ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE")} is set but {(tokenFile is null ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN")} is not; web identity needs both.");
        var credentials = await Sts.AssumeRoleWithWebIdentityAsync(context, context.ExpandHome(tokenFile), roleArn,
            context.Env("AWS_ROLE_SESSION_NAME"), null, cancellationToken).ConfigureAwait(false);
        return new(credentials, null);
    }
}

// The profile in the shared config and credentials files.
internal sealed class ProfileSource(AwsConfigContext context) : CredentialSource
{
    // The chain's profiles end in at most one SSO profile: its credentials and token state live as long as the chain.
    private SsoSource? _sso;

    public override string Name => $"profile '{context.ProfileName}'";

    public override async ValueTask<Loaded> LoadAsync(CancellationToken cancellationToken)
    {
        var files = context.Files;
        var profile = files.FindProfile(context.ProfileName, context.ProfileSelectedBy);
        if (profile is null)
            return Loaded.NotFound($"profile '{context.ProfileName}': not found in {files.Describe()}");
        var credentials = await ResolveAsync(profile, new List<string>(), cancellationToken).ConfigureAwait(false);
        return credentials is null
            ? Loaded.NotFound($"profile '{profile.Name}' ({profile.Where}): has no credentials (aws_access_key_id, role_arn, credential_process or sso_session)")
            : new(credentials, null);
    }

    // `path` holds the profiles already followed through source_profile, to report a loop instead of running in one.
    private async ValueTask<AwsCredentials?> ResolveAsync(IniSection profile, List<string> path, CancellationToken cancellationToken)
    {
        path.Add(profile.Name);
        bool isSource = path.Count > 1;
        // A source profile's own keys win over its role_arn (the SDKs' rule); the selected profile's role wins.
        if (isSource && HasStaticKeys(profile)) return StaticKeys(profile);

        if (profile.Get("role_arn") is { } roleArn)
        {
            var sessionName = profile.Get("role_session_name")?.Text;
            if (profile.Get("web_identity_token_file") is { } tokenFile)
                return await Sts.AssumeRoleWithWebIdentityAsync(context, context.ExpandHome(tokenFile.Text), roleArn.Text, sessionName, profile.Name, cancellationToken).ConfigureAwait(false);
            if (profile.Get("mfa_serial") is { } mfa)
                throw new AwsConfigurationException(
                    $"Profile '{profile.Name}' sets mfa_serial ({mfa.Where}): assuming that role needs an MFA code typed in, which SigV4Lite cannot ask for. Use a profile without MFA, or credential_process.",
                    mfa.File, mfa.Line, profile.Name);
            var source = await SourceCredentialsAsync(profile, roleArn, path, cancellationToken).ConfigureAwait(false);
            return await Sts.AssumeRoleAsync(context, source, profile, roleArn.Text, sessionName, cancellationToken).ConfigureAwait(false);
        }
        if (profile.Get("credential_process") is { } process)
            return await CredentialProcess.RunAsync(process, profile.Name, cancellationToken).ConfigureAwait(false);
        if (HasStaticKeys(profile)) return StaticKeys(profile);
        if (SsoProfile.Read(profile, context.Files) is { } sso)
            return await Sso(sso).GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
        if (isSource)
            throw new AwsConfigurationException(
                $"Profile '{profile.Name}' ({profile.Where}) is the source_profile of '{path[^2]}' but has no credentials: give it aws_access_key_id and aws_secret_access_key, role_arn, credential_process, or IAM Identity Center (sso_session).",
                null, null, profile.Name);
        return null;
    }

    private async ValueTask<AwsCredentials> SourceCredentialsAsync(IniSection profile, IniValue roleArn, List<string> path, CancellationToken cancellationToken)
    {
        if (profile.Get("source_profile") is { } sourceName)
        {
            if (sourceName.Text == profile.Name)
            {
                // A profile may name itself to mean "my own keys assume my role".
                if (HasStaticKeys(profile)) return StaticKeys(profile);
                throw Loop(profile, sourceName, path);
            }
            if (path.Contains(sourceName.Text)) throw Loop(profile, sourceName, path);
            var next = context.Files.FindProfile(sourceName.Text, null)
                ?? throw new AwsConfigurationException(
                    $"Profile '{profile.Name}' has source_profile = {sourceName.Text} ({sourceName.Where}), but there is no profile '{sourceName.Text}' in {context.Files.Describe()}.{context.Files.HintFor(sourceName.Text)}",
                    sourceName.File, sourceName.Line, profile.Name);
            return (await ResolveAsync(next, path, cancellationToken).ConfigureAwait(false))!;
        }
        if (profile.Get("credential_source") is { } credentialSource)
        {
            CredentialSource source = credentialSource.Text switch
            {
                "Environment" => new EnvironmentSource(context),
                "Ec2InstanceMetadata" => new InstanceMetadataSource(context),
                "EcsContainer" => new ContainerSource(context),
                _ => throw new AwsConfigurationException(
                    $"Profile '{profile.Name}' has credential_source = {credentialSource.Text} ({credentialSource.Where}); it must be Environment, Ec2InstanceMetadata or EcsContainer.",
                    credentialSource.File, credentialSource.Line, profile.Name),
            };
            var loaded = await source.LoadAsync(cancellationToken).ConfigureAwait(false);
            return loaded.Credentials ?? throw new AwsCredentialsException(
                $"Profile '{profile.Name}' takes its source credentials from {credentialSource.Text} ({credentialSource.Where}), which has none: {loaded.Missing}.", profile.Name);
        }
        throw new AwsConfigurationException(
            $"Profile '{profile.Name}' sets role_arn ({roleArn.Where}) but not where the credentials that assume it come from: add source_profile, credential_source or web_identity_token_file.",
            roleArn.File, roleArn.Line, profile.Name);
    }

    private SsoSource Sso(SsoProfile profile) =>
        _sso is { } sso && sso.Profile == profile ? sso : _sso = new SsoSource(context, profile);

    private static AwsConfigurationException Loop(IniSection profile, IniValue sourceName, List<string> path) =>
        new($"The profiles form a loop through source_profile: {string.Join(" -> ", path)} -> {sourceName.Text} ({sourceName.Where}). " +
            "End the chain with a profile that has aws_access_key_id and aws_secret_access_key, or credential_source.",
            sourceName.File, sourceName.Line, profile.Name);

    private static bool HasStaticKeys(IniSection profile) =>
        profile.Get("aws_access_key_id") is not null || profile.Get("aws_secret_access_key") is not null;

    private static AwsCredentials StaticKeys(IniSection profile)
    {
        var id = profile.Get("aws_access_key_id");
        var secret = profile.Get("aws_secret_access_key");
        if (id is null || secret is null)
        {
            var present = (id ?? secret)!;
            throw new AwsConfigurationException(
                $"Profile '{profile.Name}' has {(id is null ? "aws_secret_access_key" : "aws_access_key_id")} ({present.Where}) but no {(id is null ? "aws_access_key_id" : "aws_secret_access_key")}; give both.",
                present.File, present.Line, profile.Name);
        }
        try
        {
            return new AwsCredentials(id.Text, secret.Text, profile.Get("aws_session_token")?.Text);
        }
        catch (ArgumentException e)
        {
            throw new AwsConfigurationException($"The keys of profile '{profile.Name}' ({id.Where}) are malformed: {e.Message}", id.File, id.Line, profile.Name, e);
        }
    }
}

// Container credentials (ECS tasks, EKS Pod Identity, local emulators): an HTTP GET that answers JSON.
internal sealed class ContainerSource(AwsConfigContext context) : CredentialSource
{
    private const string RelativeVariable = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    private const string FullVariable = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public override string Name => "container credentials";

    public override async ValueTask<Loaded> LoadAsync(CancellationToken cancellationToken)
    {
        string? relative = context.Env(RelativeVariable), full = context.Env(FullVariable);
        if (relative is null && full is null)
            return Loaded.NotFound($"container credentials: {RelativeVariable} and {FullVariable} are not set");
        var uri = relative is not null ? RelativeUri(relative) : FullUri(full!);
        string shown = UriText.Show(uri);

        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (Token() is { } token) request.Headers.TryAddWithoutValidation("Authorization", token);
        var (status, body) = await AwsHttp.SendForCredentialsAsync(AwsHttp.Direct, request, Timeout,
            $"The container credentials endpoint {shown} did not answer", null, cancellationToken).ConfigureAwait(false);
        if (status != HttpStatusCode.OK)
            throw new AwsCredentialsException($"The container credentials endpoint {shown} answered HTTP {(int)status} {status}{Json.ErrorDetail(body)}.");
        return new(Json.ReadCredentials(body, "Token", $"the container credentials endpoint {shown}", null), null);
    }

    private Uri RelativeUri(string relative)
    {
        // Appended to the endpoint's scheme and authority, never resolved as a relative reference: '//host/path' would
        // then name another host, and the authorization token would go there.
        string origin = (context.Options.ContainerCredentialsEndpoint ?? new Uri("http://169.254.170.2")).GetLeftPart(UriPartial.Authority);
        if (!relative.StartsWith('/') || !Uri.TryCreate(origin + relative, UriKind.Absolute, out var uri) || uri.GetLeftPart(UriPartial.Authority) != origin)
            throw new AwsConfigurationException($"The environment variable {RelativeVariable} ('{UriText.Show(relative)}') must be a path starting with '/', such as /v2/credentials/abc.");
        return uri;
    }

    private static Uri FullUri(string full)
    {
        if (!Uri.TryCreate(full, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new AwsConfigurationException($"The environment variable {FullVariable} ('{UriText.Show(full)}') must be an absolute http or https URL.");
        // Plain http could be sent anywhere a variable points: only to this machine or the container agents (SSRF guard).
        if (uri.Scheme == Uri.UriSchemeHttp && !IsAllowedPlainHttpHost(uri))
            throw new AwsConfigurationException(
                $"The environment variable {FullVariable} points to host '{uri.Host}' over plain http, which is refused: plain http is allowed only to " +
                "a loopback address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]. Use https for any other host.");
        return uri;
    }

    internal static bool IsAllowedPlainHttpHost(Uri uri)
    {
        if (uri.IsLoopback) return true;
        return IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address)
            && (address.Equals(IPAddress.Parse("169.254.170.2")) || address.Equals(IPAddress.Parse("169.254.170.23")) || address.Equals(IPAddress.Parse("fd00:ec2::23")));
    }

    // The token file is read on each call: the agent rotates it.
    private string? Token()
    {
        string? token;
        string where;
        if (context.Env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") is { } file)
        {
            where = $"the token file {file} (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)";
            try
            {
                token = File.ReadAllText(file).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new AwsCredentialsException($"Cannot read {where}: {e.Message}", null, e);
            }
        }
        else
        {
            where = "the environment variable AWS_CONTAINER_AUTHORIZATION_TOKEN";
            token = context.Env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
        }
        if (token is not null && token.AsSpan().IndexOfAny('\r', '\n') >= 0)
            throw new AwsConfigurationException($"The container authorization token in {where} has a line break, which would inject a header; it must be one line.");
        return string.IsNullOrEmpty(token) ? null : token;
    }
}

// EC2 instance metadata, IMDSv2: a session token first (PUT), then the role name and its credentials (GET).
internal sealed class InstanceMetadataSource(AwsConfigContext context) : CredentialSource
{
    internal const string CredentialsPath = "latest/meta-data/iam/security-credentials/";
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);
    private const int TokenSeconds = 21600;
    private readonly object _gate = new();
    private string? _token;
    private DateTimeOffset _tokenExpires;

    public override string Name => "EC2 instance metadata";

    public override async ValueTask<Loaded> LoadAsync(CancellationToken cancellationToken)
    {
        if (context.EnvBool("AWS_EC2_METADATA_DISABLED") == true)
            return Loaded.NotFound("EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED=true");
        var endpoint = Endpoint();
        string at = UriText.Show(endpoint);
        // Being last in the chain, a failure here is "not found" with its reason, which the chain's error shows.
        try
        {
            var (status, body) = await GetAsync(endpoint, CredentialsPath, cancellationToken).ConfigureAwait(false);
            if (status == HttpStatusCode.NotFound)
                return Loaded.NotFound($"EC2 instance metadata at {at}: no IAM role is attached to this instance");
            if (status != HttpStatusCode.OK)
                return Loaded.NotFound($"EC2 instance metadata at {at}: listing the role answered HTTP {(int)status} {status}");
            string role = Encoding.UTF8.GetString(body).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is [var first, ..] ? first : "";
            if (role.Length == 0 || role.Contains('/') || role.Contains('?') || role.Contains('#'))
                return Loaded.NotFound($"EC2 instance metadata at {at}: the role name it gave is empty or malformed");
            (status, body) = await GetAsync(endpoint, CredentialsPath + Uri.EscapeDataString(role), cancellationToken).ConfigureAwait(false);
            if (status != HttpStatusCode.OK)
                return Loaded.NotFound($"EC2 instance metadata at {at}: the credentials of role {role} answered HTTP {(int)status} {status}");
            return new(Json.ReadCredentials(body, "Token", $"EC2 instance metadata at {at} (role {role})", null), null);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or AwsCredentialsException && !cancellationToken.IsCancellationRequested)
        {
            return Loaded.NotFound($"EC2 instance metadata at {at}: {e.Message}");
        }
    }

    private Uri Endpoint()
    {
        if (context.Options.InstanceMetadataEndpoint is { } configured) return WithSlash(configured);
        if (context.Env("AWS_EC2_METADATA_SERVICE_ENDPOINT") is { } value)
            return Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
                ? WithSlash(uri)
                : throw new AwsConfigurationException($"The environment variable AWS_EC2_METADATA_SERVICE_ENDPOINT ('{UriText.Show(value)}') must be an absolute http or https URL, such as http://169.254.169.254.");
        return context.Env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") is { } mode && mode.Equals("IPv6", StringComparison.OrdinalIgnoreCase)
            ? new Uri("http://[fd00:ec2::254]/")
            : new Uri("http://169.254.169.254/");

        static Uri WithSlash(Uri uri) => uri.AbsolutePath.EndsWith('/') ? uri : new Uri(uri + "/");
    }

    // A GET with the session token; a 401 means the token expired: take a new one and ask once more.
    private async Task<(HttpStatusCode Status, byte[] Body)> GetAsync(Uri endpoint, string path, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            string token = await TokenAsync(endpoint, cancellationToken).ConfigureAwait(false);
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(endpoint, path));
            request.Headers.TryAddWithoutValidation("X-aws-ec2-metadata-token", token);
            var answer = await AwsHttp.SendAsync(AwsHttp.Direct, request, Timeout, cancellationToken).ConfigureAwait(false);
            if (answer.Status != HttpStatusCode.Unauthorized || attempt > 0) return answer;
            lock (_gate) if (_token == token) _token = null;
        }
    }

    private async Task<string> TokenAsync(Uri endpoint, CancellationToken cancellationToken)
    {
        lock (_gate)
            if (_token is { } cachedToken && context.Clock.GetUtcNow() < _tokenExpires) return cachedToken;
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(endpoint, "latest/api/token"));
        request.Headers.TryAddWithoutValidation("X-aws-ec2-metadata-token-ttl-seconds", TokenSeconds.ToString(CultureInfo.InvariantCulture));
        var (status, body) = await AwsHttp.SendAsync(AwsHttp.Direct, request, Timeout, cancellationToken).ConfigureAwait(false);
        if (status != HttpStatusCode.OK)
            throw new AwsCredentialsException(status == HttpStatusCode.Forbidden
                ? "the session token request (PUT /latest/api/token) was refused with HTTP 403: instance metadata is disabled or blocked"
                : $"the session token request (PUT /latest/api/token) answered HTTP {(int)status} {status}");
        string token = Encoding.UTF8.GetString(body).Trim();
        if (token.Length == 0 || token.AsSpan().IndexOfAny('\r', '\n') >= 0)
            throw new AwsCredentialsException("the session token it gave is empty or has a line break");
        lock (_gate)
        {
            _token = token;
            _tokenExpires = context.Clock.GetUtcNow() + TimeSpan.FromSeconds(TokenSeconds - 60);
        }
        return token;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What the links share: the context, the shared config files and their parser, STS, credential_process, JSON, HTTP.
// ---------------------------------------------------------------------------------------------------------------

// The options with the values derived from them, and the config files, read once on first use.
internal sealed class AwsConfigContext(AwsConfigOptions? options)
{
    private readonly object _gate = new();
    private AwsConfigFiles? _files;

    public AwsConfigOptions Options { get; } = options ?? new AwsConfigOptions();

    public TimeProvider Clock => Options.Clock;

    // Empty counts as unset, as in the SDKs.
    public string? Env(string name)
    {
        var value = Options.GetEnvironmentVariable(name);
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }

    // A flag: true, false (in any case) or unset (null); anything else is an error rather than a silent false.
    public bool? EnvBool(string name) =>
        Env(name) is { } value ? AwsEndpoint.ParseBool(value, $"The environment variable {name}", null) : null;

    public string ProfileName => Options.Profile ?? Env("AWS_PROFILE") ?? "default";

    // How the profile was chosen, for the error when it does not exist; null when it is the implicit default.
    public string? ProfileSelectedBy => Options.Profile is not null ? "set in code" : Env("AWS_PROFILE") is not null ? "from AWS_PROFILE" : null;

    public AwsConfigFiles Files
    {
        get
        {
            lock (_gate) return _files ??= AwsConfigFiles.Load(this);
        }
    }

    public string? HomeDirectory =>
        Options.HomeDirectory ?? Env("HOME") ?? Env("USERPROFILE")
        ?? (Env("HOMEDRIVE") is { } drive && Env("HOMEPATH") is { } path ? drive + path : null)
        ?? NullIfEmpty(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    public string ExpandHome(string path) =>
        (path == "~" || path.StartsWith("~/", StringComparison.Ordinal) || path.StartsWith("~\\", StringComparison.Ordinal)) && HomeDirectory is { } home
            ? Path.Join(home, path.AsSpan(1))
            : path;

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;
}

// A value in a config file, with where it was written (for errors: never the value of a secret).
internal sealed class IniValue(string text, string file, int line)
{
    public string Text { get; } = text;
    public string File { get; } = file;
    public int Line { get; } = line;
    public string Where => $"{File} line {Line}";

    // A nested value, written on indented lines under an empty one (`lambda =` then `  endpoint_url = ...`).
    public string? SubValue(string key)
    {
        foreach (var line in Text.Split('\n'))
        {
            int eq = line.IndexOf('=');
            if (eq > 0 && line.AsSpan(0, eq).Trim().Equals(key, StringComparison.OrdinalIgnoreCase))
                return line[(eq + 1)..].Trim() is { Length: > 0 } value ? value : null;
        }
        return null;
    }
}

// A profile, or a [services name] section: its values, merged from every place it is defined.
internal sealed class IniSection(string name)
{
    private readonly Dictionary<string, IniValue> _values = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _places = new();

    public string Name { get; } = name;

    public string Where => string.Join(", ", _places);

    // Empty values count as absent.
    public IniValue? Get(string key) => _values.TryGetValue(key, out var value) && value.Text.Length > 0 ? value : null;

    public void Merge(IniRawSection raw)
    {
        _places.Add($"{raw.File} line {raw.Line}");
        foreach (var (key, value) in raw.Values) _values[key] = value;
    }
}

internal sealed record IniRawSection(string Header, string File, int Line, List<KeyValuePair<string, IniValue>> Values);

// The shared config file and credentials file, parsed and merged by the SDKs' rules.
internal sealed class AwsConfigFiles
{
    private readonly Dictionary<string, IniSection> _profiles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IniSection> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IniSection> _ssoSessions = new(StringComparer.Ordinal);
    private readonly List<(string Name, string Hint)> _ignored = new();

    private AwsConfigFiles(string? configPath, bool configExists, string? credentialsPath, bool credentialsExists)
    {
        ConfigPath = configPath;
        ConfigExists = configExists;
        CredentialsPath = credentialsPath;
        CredentialsExists = credentialsExists;
    }

    public string? ConfigPath { get; }
    public bool ConfigExists { get; }
    public string? CredentialsPath { get; }
    public bool CredentialsExists { get; }

    public static AwsConfigFiles Load(AwsConfigContext context)
    {
        string? home = context.HomeDirectory;
        string? configPath = context.Env("AWS_CONFIG_FILE") is { } c ? context.ExpandHome(c) : home is null ? null : Path.Join(home, ".aws", "config");
        string? credentialsPath = context.Env("AWS_SHARED_CREDENTIALS_FILE") is { } s ? context.ExpandHome(s) : home is null ? null : Path.Join(home, ".aws", "credentials");
        string? configText = Read(configPath), credentialsText = Read(credentialsPath);
        var files = new AwsConfigFiles(configPath, configText is not null, credentialsPath, credentialsText is not null);
        // The config file first, then the credentials file: its values win where both set one.
        if (configText is not null) files.Add(IniParser.Parse(configText, configPath!), isConfigFile: true);
        if (credentialsText is not null) files.Add(IniParser.Parse(credentialsText, credentialsPath!), isConfigFile: false);
        return files;
    }

    private static string? Read(string? path)
    {
        if (path is null || !File.Exists(path)) return null;
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AwsConfigurationException($"Cannot read the AWS config file {path}: {e.Message}", path, null, null, e);
        }
    }

    // Config file: [default], [profile name], [services name], [sso-session name] (other prefixes are skipped).
    // Credentials file: [name] only. [profile default] replaces [default] entirely. Names: [A-Za-z0-9_\-/.%@:+].
    private void Add(List<IniRawSection> sections, bool isConfigFile)
    {
        bool hasPrefixedDefault = isConfigFile && sections.Exists(s => Split(s.Header) is ("profile", "default"));
        foreach (var section in sections)
        {
            var (prefix, name) = Split(section.Header);
            string place = $"{section.File} line {section.Line}";
            if (!IsIdentifier(name))
            {
                _ignored.Add((name, $" The section [{section.Header}] at {place} is ignored: '{name}' is not a valid name (letters, digits and _-/.%@:+ only)."));
                continue;
            }
            if (isConfigFile)
            {
                if (prefix is null && name == "default" && hasPrefixedDefault) continue;
                if (prefix == "profile" || (prefix is null && name == "default")) Section(_profiles, name).Merge(section);
                else if (prefix == "services") Section(_services, name).Merge(section);
                else if (prefix == "sso-session") Section(_ssoSessions, name).Merge(section);
                else if (prefix is null)
                    _ignored.Add((name, $" The section [{name}] at {place} is ignored: in the config file, profiles are written [profile {name}]."));
            }
            else if (prefix is null) Section(_profiles, name).Merge(section);
            else if (prefix == "profile")
                _ignored.Add((name, $" The section [{section.Header}] at {place} is ignored: in the credentials file, profiles are written [{name}], without 'profile'."));
        }
    }

    private static IniSection Section(Dictionary<string, IniSection> map, string name)
    {
        if (!map.TryGetValue(name, out var section)) map[name] = section = new IniSection(name);
        return section;
    }

    private static (string? Prefix, string Name) Split(string header)
    {
        int space = header.AsSpan().IndexOfAny(' ', '\t');
        return space < 0 ? (null, header) : (header[..space], header[(space + 1)..].Trim(' ', '\t'));
    }

    private static bool IsIdentifier(string name)
    {
        if (name.Length == 0) return false;
        foreach (char c in name)
            if (!(c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' || "_-/.%@:+".Contains(c))) return false;
        return true;
    }

    // The profile, or null when it does not exist; an error when it was asked for by name (`selectedBy` not null).
    public IniSection? FindProfile(string name, string? selectedBy)
    {
        if (_profiles.TryGetValue(name, out var profile)) return profile;
        if (selectedBy is null) return null;
        var known = _profiles.Count == 0 ? "There are no profiles there." : "The profiles there are: " + string.Join(", ", _profiles.Keys) + ".";
        throw new AwsConfigurationException($"The AWS profile '{name}' ({selectedBy}) is not in {Describe()}. {known}{HintFor(name)}", null, null, name);
    }

    public IniSection? FindServices(string name) => _services.GetValueOrDefault(name);

    public IniSection? FindSsoSession(string name) => _ssoSessions.GetValueOrDefault(name);

    public string HintFor(string name)
    {
        foreach (var (ignoredName, hint) in _ignored)
            if (ignoredName == name) return hint;
        return "";
    }

    public string Describe() =>
        $"{ConfigPath ?? "(no home directory for the config file)"}{(ConfigExists ? "" : " (no such file)")} and " +
        $"{CredentialsPath ?? "(no home directory for the credentials file)"}{(CredentialsExists ? "" : " (no such file)")}";
}

// The INI dialect of the AWS shared files. Lines starting with # or ; are comments; a property's value ends at a
// # or ; that follows white space; an indented line continues the property above it (and, under an empty value,
// holds nested `name = value` lines). Errors give the file and line, never the line's text (it may hold a secret).
internal static class IniParser
{
    public static List<IniRawSection> Parse(string text, string file)
    {
        var sections = new List<IniRawSection>();
        IniRawSection? section = null;
        int property = -1; // index of the property that indented lines continue, in section.Values
        bool nested = false;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            int number = i + 1;
            if (line.AsSpan().Trim(" \t").IsEmpty || line[0] is '#' or ';') continue;
            if (line[0] == '[')
            {
                string header = StripComment(line, commentNeedsWhiteSpace: false);
                if (!header.EndsWith(']'))
                    throw Error(file, number, "a section header must end with ']', such as [profile name]");
                section = new IniRawSection(header[1..^1].Trim(' ', '\t'), file, number, new());
                sections.Add(section);
                property = -1;
            }
            else if (line[0] is ' ' or '\t')
            {
                if (section is null)
                    throw Error(file, number, "an indented line comes before any section header; start the file with a section such as [default]");
                if (property < 0)
                    throw Error(file, number, "an indented line continues a property, but no property comes before it in this section; remove the indentation");
                string continuation = line.Trim(' ', '\t');
                if (nested)
                {
                    continuation = StripComment(continuation, commentNeedsWhiteSpace: true);
                    if (continuation.Length > 0) ReadProperty(continuation, file, number, "nested property");
                }
                var (key, value) = section.Values[property];
                section.Values[property] = new(key, new IniValue(value.Text + "\n" + continuation, value.File, value.Line));
            }
            else
            {
                if (section is null)
                    throw Error(file, number, "a property comes before any section header; put it under a section such as [default] or [profile name]");
                var (key, value) = ReadProperty(StripComment(line, commentNeedsWhiteSpace: true), file, number, "property");
                section.Values.Add(new(key, new IniValue(value, file, number)));
                property = section.Values.Count - 1;
                nested = value.Length == 0;
            }
        }
        return sections;
    }

    private static (string Key, string Value) ReadProperty(string line, string file, int number, string what)
    {
        int eq = line.IndexOf('=');
        if (eq < 0) throw Error(file, number, $"expected a {what} written 'name = value', but there is no '='");
        string key = line[..eq].Trim(' ', '\t');
        if (key.Length == 0) throw Error(file, number, $"the {what} has no name before '='");
        return (key, line[(eq + 1)..].Trim(' ', '\t'));
    }

    private static string StripComment(string line, bool commentNeedsWhiteSpace)
    {
        line = line.Trim(' ', '\t');
        for (int i = 0; i < line.Length; i++)
            if (line[i] is '#' or ';' && (!commentNeedsWhiteSpace || (i > 0 && char.IsWhiteSpace(line[i - 1]))))
                return line[..i].Trim(' ', '\t');
        return line;
    }

    private static AwsConfigurationException Error(string file, int line, string what) =>
        new($"The AWS config file {file} is malformed at line {line}: {what}.", file, line);
}

// STS AssumeRole (signed with the source credentials) and AssumeRoleWithWebIdentity (unsigned). With AwsClient.cs in
// the same compilation they go through its send pipeline (retried on throttling and transient errors, errors read as
// AWS writes them); without it, this file still works on its own and sends each call once.
internal static partial class Sts
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<AwsCredentials> AssumeRoleAsync(AwsConfigContext context, AwsCredentials source, IniSection profile,
        string roleArn, string? sessionName, CancellationToken cancellationToken)
    {
        var form = new StringBuilder("Action=AssumeRole&Version=2011-06-15");
        Append(form, "RoleArn", roleArn);
        Append(form, "RoleSessionName", sessionName ?? DefaultSessionName(context));
        if (profile.Get("external_id") is { } externalId) Append(form, "ExternalId", externalId.Text);
        if (profile.Get("duration_seconds") is { } duration)
        {
            if (!int.TryParse(duration.Text, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds is < 900 or > 43200)
                throw new AwsConfigurationException($"The duration_seconds of profile '{profile.Name}' ({duration.Where}) must be a whole number from 900 to 43200.",
                    duration.File, duration.Line, profile.Name);
            Append(form, "DurationSeconds", duration.Text);
        }
        return await CallAsync(context, "AssumeRole", roleArn, form.ToString(), source, profile.Name, cancellationToken).ConfigureAwait(false);
    }

    public static async Task<AwsCredentials> AssumeRoleWithWebIdentityAsync(AwsConfigContext context, string tokenFile, string roleArn,
        string? sessionName, string? profileName, CancellationToken cancellationToken)
    {
        string token;
        try
        {
            // Read on each call: the token is rotated by whoever writes the file.
            token = (await File.ReadAllTextAsync(tokenFile, cancellationToken).ConfigureAwait(false)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AwsCredentialsException($"Cannot read the web identity token file {tokenFile}: {e.Message}", profileName, e);
        }
        if (token.Length == 0)
            throw new AwsCredentialsException($"The web identity token file {tokenFile} is empty.", profileName);
        var form = new StringBuilder("Action=AssumeRoleWithWebIdentity&Version=2011-06-15");
        Append(form, "RoleArn", roleArn);
        Append(form, "RoleSessionName", sessionName ?? DefaultSessionName(context));
        Append(form, "WebIdentityToken", token);
        return await CallAsync(context, "AssumeRoleWithWebIdentity", roleArn, form.ToString(), null, profileName, cancellationToken).ConfigureAwait(false);
    }

    private static void Append(StringBuilder form, string name, string value) =>
        form.Append('&').Append(name).Append('=').Append(Uri.EscapeDataString(value));

    private static string DefaultSessionName(AwsConfigContext context) =>
        "sigv4lite-" + context.Clock.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    private static async Task<AwsCredentials> CallAsync(AwsConfigContext context, string action, string roleArn, string form,
        AwsCredentials? signer, string? profileName, CancellationToken cancellationToken)
    {
        // Regional STS in the resolved region; the global endpoint (signed for us-east-1) when there is none.
        string? region = AwsRegion.Find(context, null);
        var endpoint = context.Options.StsEndpoint ?? AwsEndpoint.Find("STS", context)
            ?? (region is null ? new Uri("https://sts.amazonaws.com/") : AwsEndpoint.ForRegion("sts", region));
        string what = $"STS {action} for role {roleArn} at {UriText.Show(endpoint)}";

        Task<byte[]>? throughPipeline = null;
        SendThroughPipeline(context, endpoint, region ?? "us-east-1", action, form, signer, what, profileName, cancellationToken, ref throughPipeline);
        if (throughPipeline is not null)
            return ReadCredentials(await throughPipeline.ConfigureAwait(false), what, profileName);

        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(form)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded") { CharSet = "utf-8" };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/xml"));
        if (signer is not null)
            await SigV4.SignAsync(request, signer, new SigV4Options("sts", region ?? "us-east-1") { Clock = context.Clock }, cancellationToken).ConfigureAwait(false);
        var (status, body) = await AwsHttp.SendForCredentialsAsync(AwsHttp.Proxied, request, Timeout,
            what + " failed", profileName, cancellationToken).ConfigureAwait(false);
        if (status != HttpStatusCode.OK)
        {
            var error = ReadXml(body, what, profileName);
            throw new AwsCredentialsException(
                $"{what} failed with HTTP {(int)status}: {error.GetValueOrDefault("Code") ?? "no error code"}: {Json.Clip(error.GetValueOrDefault("Message") ?? "no message")}",
                profileName);
        }
        return ReadCredentials(body, what, profileName);
    }

    // Sets `answer` to the call through AwsClient.cs's pipeline (its successful body, or an AwsCredentialsException) when
    // that file is compiled in; a partial method with no implementation is removed by the compiler.
    static partial void SendThroughPipeline(AwsConfigContext context, Uri endpoint, string signingRegion, string action, string form,
        AwsCredentials? signer, string what, string? profileName, CancellationToken cancellationToken, ref Task<byte[]>? answer);

    private static AwsCredentials ReadCredentials(byte[] body, string what, string? profileName)
    {
        var values = ReadXml(body, what, profileName);
        return Json.MakeCredentials(values.GetValueOrDefault("AccessKeyId"), values.GetValueOrDefault("SecretAccessKey"),
            values.GetValueOrDefault("SessionToken"), values.GetValueOrDefault("Expiration"), "SessionToken", what, profileName);
    }

    private static readonly string[] XmlLeaves = ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "Code", "Message"];

    // The leaf elements STS answers with (credentials, or an error's Code and Message). A fault is told by its position
    // and the element names around it, never by text (it may hold a secret).
    private static Dictionary<string, string> ReadXml(byte[] body, string what, string? profileName)
    {
        var values = AwsXml.ReadLeaves(body, XmlLeaves, out string? error);
        if (error is not null) throw new AwsCredentialsException($"{what} answered with malformed XML ({error}).", profileName);
        return values;
    }
}

// The few leaf elements AWS's XML answers carry (an error's Code and Message, STS's credentials), read by a small
// scanner instead of System.Xml's reader, which would add about 700 KB to a Native AOT app for this. It checks what a
// reader must (tags balanced and alike, one root element, known entities, terminated comments, CDATA and processing
// instructions) and refuses a DTD, so nothing is ever expanded or fetched; namespace prefixes are dropped.
internal static class AwsXml
{
    // The trimmed text of the first non-empty leaf element (one without child elements) of each wanted name ("" when all
    // were empty). `error` is null for a well-formed document, else where and why it is not ("line 1, position 41:
    // ..."), with what was read before it kept; it names no element but the wanted ones (any other "name" may be text).
    public static Dictionary<string, string> ReadLeaves(ReadOnlySpan<byte> xml, string[] names, out string? error)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var scanner = new Scanner(names, values);
        int at = scanner.Read(xml, out string? problem);
        error = problem is null ? null : $"{Where(xml, at)}: {problem}";
        return values;
    }

    // "line L, position P", both from 1, the position in characters as a text editor counts them.
    private static string Where(ReadOnlySpan<byte> xml, int offset)
    {
        var before = xml[..Math.Min(offset, xml.Length)];
        int lineStart = before.LastIndexOf((byte)'\n') + 1;
        int line = before.Count((byte)'\n') + 1;
        int position = 1;
        foreach (byte b in before[lineStart..])
            if ((b & 0xC0) != 0x80) position++; // not a UTF-8 continuation byte
        return string.Create(CultureInfo.InvariantCulture, $"line {line}, position {position}");
    }

    private struct Scanner(string[] names, Dictionary<string, string> values)
    {
        private readonly List<(int Start, int Length)> _open = new(); // the open elements' names, innermost last
        private readonly List<byte> _text = new();                     // the innermost element's text while it is a wanted leaf
        private bool _leaf, _capture, _rootSeen, _rootClosed;          // _capture: the innermost element is wanted

        // The offset where reading stopped, with the problem there (null: the document ended well).
        public int Read(ReadOnlySpan<byte> xml, out string? problem)
        {
            int i = xml.StartsWith("\uFEFF"u8) ? 3 : 0;
            while (i < xml.Length)
            {
                int lt = xml[i..].IndexOf((byte)'<');
                int end = lt < 0 ? xml.Length : i + lt;
                if ((problem = Text(xml, i, end, out int bad)) is not null) return bad;
                if (lt < 0) break;
                i = end;
                var rest = xml[i..];
                if (rest.StartsWith("<?"u8)) problem = SkipPast(xml, ref i, 2, "?>"u8, "a processing instruction");
                else if (rest.StartsWith("<!--"u8)) problem = SkipPast(xml, ref i, 4, "-->"u8, "a comment");
                else if (rest.StartsWith("<![CDATA["u8)) problem = CData(xml, ref i);
                else if (rest.StartsWith("<!"u8)) problem = "a DTD or declaration, which is not accepted";
                else if (rest.StartsWith("</"u8)) problem = EndTag(xml, ref i);
                else problem = StartTag(xml, ref i);
                if (problem is not null) return i;
            }
            if (_open.Count > 0)
            {
                var (start, length) = _open[^1];
                problem = $"the document ends inside <{Shown(xml.Slice(start, length))}>";
                return xml.Length;
            }
            problem = _rootSeen ? null : "there is no root element";
            return xml.Length;
        }

        // Character data between markup: only whitespace outside the root; entities decoded; kept while in a leaf.
        private string? Text(ReadOnlySpan<byte> xml, int from, int to, out int bad)
        {
            bad = from;
            var text = xml[from..to];
            if (_open.Count == 0)
            {
                int data = text.IndexOfAnyExcept(" \t\r\n"u8);
                bad = from + data;
                return data < 0 ? null : "text outside the root element";
            }
            while (text.Length > 0)
            {
                int amp = text.IndexOf((byte)'&');
                if (_leaf && _capture) AppendRaw(amp < 0 ? text : text[..amp]);
                if (amp < 0) return null;
                int semicolon = text[amp..].IndexOf((byte)';');
                bad = to - text.Length + amp;
                if (semicolon < 0 || !Entity(text.Slice(amp + 1, semicolon - 1))) return "an unknown or unterminated entity (&...;)";
                text = text[(amp + semicolon + 1)..];
            }
            return null;
        }

        // &lt; &gt; &amp; &quot; &apos; &#NN; &#xNN;
        private bool Entity(ReadOnlySpan<byte> name)
        {
            int code;
            if (name.SequenceEqual("lt"u8)) code = '<';
            else if (name.SequenceEqual("gt"u8)) code = '>';
            else if (name.SequenceEqual("amp"u8)) code = '&';
            else if (name.SequenceEqual("quot"u8)) code = '"';
            else if (name.SequenceEqual("apos"u8)) code = '\'';
            else if (name.StartsWith("#x"u8)) { if (!int.TryParse(name[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code)) return false; }
            else if (name.StartsWith("#"u8)) { if (!int.TryParse(name[1..], NumberStyles.None, CultureInfo.InvariantCulture, out code)) return false; }
            else return false;
            if (!Rune.TryCreate(code, out var rune) || code == 0) return false;
            if (_leaf && _capture)
            {
                Span<byte> utf8 = stackalloc byte[4];
                Append(utf8[..rune.EncodeToUtf8(utf8)]);
            }
            return true;
        }

        private string? CData(ReadOnlySpan<byte> xml, ref int i)
        {
            if (_open.Count == 0) return "CDATA outside the root element";
            int close = xml[(i + 9)..].IndexOf("]]>"u8);
            if (close < 0) return "a CDATA section that is not closed";
            if (_leaf && _capture) AppendRaw(xml.Slice(i + 9, close));
            i += 9 + close + 3;
            return null;
        }

        private static string? SkipPast(ReadOnlySpan<byte> xml, ref int i, int opening, ReadOnlySpan<byte> closing, string what)
        {
            int close = xml[(i + opening)..].IndexOf(closing);
            if (close < 0) return what + " that is not closed";
            i += opening + close + closing.Length;
            return null;
        }

        private string? StartTag(ReadOnlySpan<byte> xml, ref int i)
        {
            if (_rootClosed) return "a second root element";
            int nameStart = i + 1;
            int nameLength = NameLength(xml[nameStart..]);
            if (nameLength == 0) return "a '<' that starts no element (write it as &lt;)";
            // Attributes are skipped (xmlns among them); a '>' inside a quoted value does not end the tag.
            int j = nameStart + nameLength;
            byte quote = 0;
            for (; j < xml.Length; j++)
            {
                byte c = xml[j];
                if (quote != 0) { if (c == quote) quote = 0; }
                else if (c is (byte)'"' or (byte)'\'') quote = c;
                else if (c == (byte)'<') return "a '<' inside a tag";
                else if (c == (byte)'>') break;
            }
            if (j >= xml.Length) return "a tag that is not closed";
            bool empty = xml[j - 1] == (byte)'/' && j - 1 >= nameStart + nameLength;
            _rootSeen = true;
            _leaf = false; // the parent has a child now
            i = j + 1;
            if (empty)
            {
                Record(xml.Slice(nameStart, nameLength), ""u8);
                if (_open.Count == 0) _rootClosed = true;
                return null;
            }
            _open.Add((nameStart, nameLength));
            _leaf = true;
            _capture = Wanted(xml.Slice(nameStart, nameLength)) is not null;
            _text.Clear();
            return null;
        }

        private string? EndTag(ReadOnlySpan<byte> xml, ref int i)
        {
            int nameStart = i + 2;
            int nameLength = NameLength(xml[nameStart..]);
            int j = nameStart + nameLength;
            while (j < xml.Length && xml[j] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') j++;
            if (j >= xml.Length || xml[j] != (byte)'>') return "an end tag that is not closed";
            var name = xml.Slice(nameStart, nameLength);
            if (_open.Count == 0) return $"an end tag </{Shown(name)}> with no element open";
            var (start, length) = _open[^1];
            if (!name.SequenceEqual(xml.Slice(start, length)))
                return $"the end tag </{Shown(name)}> does not match <{Shown(xml.Slice(start, length))}>";
            if (_leaf && _capture) Record(name, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_text));
            _open.RemoveAt(_open.Count - 1);
            _leaf = false;
            if (_open.Count == 0) _rootClosed = true;
            i = j + 1;
            return null;
        }

        // An element's name in a message, when it is one of the names asked for; any other "name" may be text of the
        // answer (in a malformed one, whatever follows a stray '<'), which may be a secret.
        private string Shown(ReadOnlySpan<byte> qualifiedName) => NameOf(qualifiedName) ?? "…"; // a prefix may be text too

        // The wanted name an element has (its local name, after a prefix's ':'), or null.
        private string? NameOf(ReadOnlySpan<byte> qualifiedName)
        {
            var local = qualifiedName[(qualifiedName.IndexOf((byte)':') + 1)..];
            foreach (string name in names)
                if (local.Length == name.Length && Ascii.Equals(local, name)) return name;
            return null;
        }

        // The wanted name an element stands for, unless it has been read already (an empty one may be read again).
        private string? Wanted(ReadOnlySpan<byte> qualifiedName) =>
            NameOf(qualifiedName) is { } name && !(values.TryGetValue(name, out var read) && read.Length > 0) ? name : null;

        // A name runs to whitespace, '/', '>' or the end.
        private static int NameLength(ReadOnlySpan<byte> from)
        {
            int n = from.IndexOfAny(" \t\r\n/><"u8);
            return n < 0 ? from.Length : n;
        }

        private void Append(ReadOnlySpan<byte> bytes)
        {
            foreach (byte b in bytes) _text.Add(b);
        }

        // The document's own text, its line ends made "\n" as XML says (a character reference such as &#13; is kept).
        private void AppendRaw(ReadOnlySpan<byte> bytes)
        {
            for (int k = 0; k < bytes.Length; k++)
            {
                if (bytes[k] != (byte)'\r') _text.Add(bytes[k]);
                else if (k + 1 >= bytes.Length || bytes[k + 1] != (byte)'\n') _text.Add((byte)'\n');
            }
        }

        // Kept when the element's local name (after a prefix's ':') is wanted and not yet read: the first non-empty one.
        private void Record(ReadOnlySpan<byte> qualifiedName, ReadOnlySpan<byte> text)
        {
            if (Wanted(qualifiedName) is { } name) values[name] = Encoding.UTF8.GetString(text).Trim();
        }
    }
}

// credential_process: runs the command through the shell and reads the credentials it prints as JSON.
internal static class CredentialProcess
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    internal const int MaxOutput = 1024 * 1024; // as much as a credentials endpoint's answer may be
    private const int MaxErrorOutput = 64 * 1024; // only its first line is ever shown
    private static readonly TimeSpan ErrorOutputGrace = TimeSpan.FromSeconds(1);

    public static async Task<AwsCredentials> RunAsync(IniValue command, string profileName, CancellationToken cancellationToken)
    {
        // The command line may carry secrets as arguments: errors name its profile and place, not the command.
        string what = $"The credential_process of profile '{profileName}' ({command.Where})";
        using var process = Start(command, what, profileName);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(Timeout);
        var output = new ProcessOutput(MaxOutput, isJson: true);
        var errors = new ProcessOutput(MaxErrorOutput, isJson: false);
        var reading = Observed(output.ReadAsync(process.StandardOutput.BaseStream, stop.Token));
        var readingErrors = Observed(errors.ReadAsync(process.StandardError.BaseStream, stop.Token));
        try
        {
            if (!await WaitAsync(process, output, reading, stop.Token).ConfigureAwait(false))
            {
                EndTree(process);
                throw new AwsCredentialsException($"{what} printed more than {MaxOutput:N0} bytes, the most SigV4Lite reads, and was stopped; it must print one JSON object with the credentials.", profileName);
            }
            if (process.ExitCode != 0)
            {
                await Task.WhenAny(readingErrors, Task.Delay(ErrorOutputGrace, stop.Token)).ConfigureAwait(false);
                throw Failed(what, process.ExitCode, errors.Text(), profileName);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            EndTree(process);
            if (cancellationToken.IsCancellationRequested) throw;
            throw new AwsCredentialsException($"{what} did not finish within {Timeout.TotalMinutes} minutes and was stopped.", profileName);
        }
        finally
        {
            stop.Cancel(); // ends the reads that a process left running in the background could hold open
        }
        return Credentials(output.Bytes(), what, profileName);
    }

    private static Process Start(IniValue command, string what, string profileName)
    {
        var start = OperatingSystem.IsWindows() ? new ProcessStartInfo("cmd.exe") { ArgumentList = { "/d", "/c", command.Text } }
                                                : new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command.Text } };
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.CreateNoWindow = true;
        var process = new Process { StartInfo = start };
        try
        {
            process.Start();
            return process;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            process.Dispose();
            throw new AwsCredentialsException($"{what} could not be started: {e.Message}", profileName, e);
        }
    }

    // Until the process has exited and its output has ended or holds a whole JSON value; false when the output
    // went past the limit first.
    private static async Task<bool> WaitAsync(Process process, ProcessOutput output, Task<bool> reading, CancellationToken cancellationToken)
    {
        var exit = process.WaitForExitAsync(cancellationToken);
        if (await Task.WhenAny(exit, reading).ConfigureAwait(false) == reading && !await reading.ConfigureAwait(false)) return false;
        await exit.ConfigureAwait(false);
        return output.ProcessExited() || await reading.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void EndTree(Process process)
    {
        try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } // it may have just ended
    }

    // A read that is left behind (the process failed, or a child holds the pipe) fails unobserved, harmlessly.
    private static Task<bool> Observed(Task<bool> task)
    {
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    // Its error output is written for people (what to do: log in again...); its standard output may hold keys.
    // Only the first line is shown, clipped: a script run with `set -x` traces its commands there, keys and all, on
    // the lines that follow. (A first line that is itself such a trace would still show.)
    private static AwsCredentialsException Failed(string what, int exitCode, string errorOutput, string profileName)
    {
        string stderr = errorOutput.Trim();
        int lineEnd = stderr.AsSpan().IndexOfAny('\r', '\n');
        string firstLine = lineEnd < 0 ? stderr : stderr[..lineEnd].TrimEnd();
        return new AwsCredentialsException($"{what} exited with code {exitCode}{(firstLine.Length > 0 ? ": " + Json.Clip(firstLine) : "")}.", profileName);
    }

    private static AwsCredentials Credentials(byte[] output, string what, string profileName)
    {
        var values = Json.ReadObject(output, what + " printed", profileName);
        if (values.GetValueOrDefault("Version") != "1")
            throw new AwsCredentialsException($"{what} printed JSON without \"Version\": 1; the format is {{\"Version\": 1, \"AccessKeyId\": ..., \"SecretAccessKey\": ..., \"SessionToken\": ..., \"Expiration\": ...}}.", profileName);
        return Json.MakeCredentials(values.GetValueOrDefault("AccessKeyId"), values.GetValueOrDefault("SecretAccessKey"),
            values.GetValueOrDefault("SessionToken"), values.GetValueOrDefault("Expiration"), "SessionToken", what, profileName);
    }

    // What the process prints on one stream, up to a limit. Standard output (isJson) is read until it ends or, once
    // the process has exited, until it holds a whole JSON value: a process the command left running in the
    // background may hold the stream open long after. Past the limit, standard output stops the read; error output
    // is read on and dropped, so that the process never blocks on a full pipe.
    private sealed class ProcessOutput(int limit, bool isJson)
    {
        private readonly object _gate = new();
        private readonly ArrayBufferWriter<byte> _bytes = new();
        private bool _exited;

        // True at the end of the stream or of the JSON; false when the output went past the limit.
        public async Task<bool> ReadAsync(Stream stream, CancellationToken cancellationToken)
        {
            var chunk = new byte[16 * 1024];
            while (true)
            {
                int n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false);
                if (n == 0) return true;
                lock (_gate)
                {
                    if (_bytes.WrittenCount + n > limit)
                    {
                        if (isJson) return false;
                        n = limit - _bytes.WrittenCount;
                    }
                    _bytes.Write(chunk.AsSpan(0, n));
                    if (_exited && IsWholeJson(_bytes.WrittenSpan)) return true;
                }
            }
        }

        // The process has exited: true when its output already holds a whole JSON value.
        public bool ProcessExited()
        {
            lock (_gate)
            {
                _exited = isJson;
                return _exited && IsWholeJson(_bytes.WrittenSpan);
            }
        }

        public byte[] Bytes()
        {
            lock (_gate) return WithoutBom(_bytes.WrittenSpan).ToArray();
        }

        public string Text()
        {
            lock (_gate) return Encoding.UTF8.GetString(_bytes.WrittenSpan);
        }

        // A JSON value followed by anything, or JSON that more bytes could not mend (the parse reports it).
        private static bool IsWholeJson(ReadOnlySpan<byte> bytes)
        {
            var reader = new Utf8JsonReader(WithoutBom(bytes), isFinalBlock: false, new JsonReaderState(new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip }));
            try
            {
                return reader.Read() && reader.TrySkip();
            }
            catch (JsonException)
            {
                return true;
            }
        }

        private static ReadOnlySpan<byte> WithoutBom(ReadOnlySpan<byte> bytes) => bytes.StartsWith("\uFEFF"u8) ? bytes[3..] : bytes;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// IAM Identity Center (SSO) profiles: the token `aws sso login` cached is refreshed through SSO OIDC when it is
// about to expire (session form only), then traded at the SSO portal for the role's credentials. Neither call is
// SigV4-signed. The token, its refresh token and the client secret never appear in a message or ToString().
// ---------------------------------------------------------------------------------------------------------------

// An SSO profile's settings: `sso_session` naming an [sso-session NAME] section that holds sso_start_url and
// sso_region, or (the legacy form) sso_start_url and sso_region in the profile itself; both need sso_account_id
// and sso_role_name.
internal sealed record SsoProfile(string Name, string? SessionName, string StartUrl, string Region, string AccountId, string RoleName)
{
    private static readonly string[] Keys = ["sso_session", "sso_start_url", "sso_region", "sso_account_id", "sso_role_name"];

    // The CLI names the token cache file after the session, or (legacy form) the start URL.
    public string CacheKey => SessionName ?? StartUrl;

    // The profile's SSO settings; null when it sets none of them.
    public static SsoProfile? Read(IniSection profile, AwsConfigFiles files)
    {
        IniValue? first = null;
        foreach (string key in Keys) first ??= profile.Get(key);
        if (first is null) return null;

        IniValue? startUrl = profile.Get("sso_start_url"), region = profile.Get("sso_region");
        var session = profile.Get("sso_session");
        if (session is not null)
        {
            var section = files.FindSsoSession(session.Text)
                ?? throw new AwsConfigurationException(
                    $"Profile '{profile.Name}' has sso_session = {session.Text} ({session.Where}), but there is no [sso-session {session.Text}] section in {files.ConfigPath}.",
                    session.File, session.Line, profile.Name);
            startUrl = Agree(profile, section, "sso_start_url", startUrl);
            region = Agree(profile, section, "sso_region", region);
        }
        IniValue? accountId = profile.Get("sso_account_id"), roleName = profile.Get("sso_role_name");
        var missing = new List<string>();
        if (accountId is null) missing.Add("sso_account_id");
        if (roleName is null) missing.Add("sso_role_name");
        if (startUrl is null) missing.Add(session is null ? "sso_start_url" : $"sso_start_url (in [sso-session {session.Text}])");
        if (region is null) missing.Add(session is null ? "sso_region" : $"sso_region (in [sso-session {session.Text}])");
        if (missing.Count > 0)
            throw new AwsConfigurationException(
                $"Profile '{profile.Name}' uses IAM Identity Center (SSO, {first.Where}) but has no {string.Join(", ", missing)}. " +
                "`aws configure sso` writes such a profile: sso_session, sso_account_id and sso_role_name in the profile; sso_start_url and sso_region in [sso-session NAME].",
                first.File, first.Line, profile.Name);
        if (!AwsRegion.IsValid(region!.Text))
            throw new AwsConfigurationException($"The sso_region '{region.Text}' ({region.Where}) of profile '{profile.Name}' is not a region name; write one such as us-east-1.",
                region.File, region.Line, profile.Name);
        return new SsoProfile(profile.Name, session?.Text, startUrl!.Text, region.Text, accountId!.Text, roleName!.Text);
    }

    // A value the profile and its sso-session both set must be the same in both (the SDKs' rule); else the session's.
    private static IniValue? Agree(IniSection profile, IniSection session, string key, IniValue? inProfile)
    {
        var inSession = session.Get(key);
        if (inSession is not null && inProfile is not null && inSession.Text != inProfile.Text)
            throw new AwsConfigurationException(
                $"Profile '{profile.Name}' sets {key} = {inProfile.Text} ({inProfile.Where}), but its sso-session '{session.Name}' sets {key} = {inSession.Text} ({inSession.Where}); " +
                "remove it from the profile, or make the two the same.",
                inProfile.File, inProfile.Line, profile.Name);
        return inSession ?? inProfile;
    }

    public Uri PortalUri(AwsConfigContext context) =>
        At(AwsEndpoint.Find("SSO", context) ?? AwsEndpoint.ForRegion("portal.sso", Region),
            $"/federation/credentials?account_id={Uri.EscapeDataString(AccountId)}&role_name={Uri.EscapeDataString(RoleName)}");

    public Uri OidcUri(AwsConfigContext context) =>
        At(AwsEndpoint.Find("SSO OIDC", context) ?? AwsEndpoint.ForRegion("oidc", Region), "/token");

    // An endpoint's own path is kept as a prefix of the API's.
    private static Uri At(Uri endpoint, string pathAndQuery) =>
        new(endpoint.GetLeftPart(UriPartial.Authority) + endpoint.AbsolutePath.TrimEnd('/') + pathAndQuery);

    // The error for what only signing in again mends.
    public AwsCredentialsException LoginError(string problem) =>
        new($"Profile '{Name}' signs in with IAM Identity Center{(SessionName is null ? "" : $" (sso-session '{SessionName}')")}, but {problem}. " +
            $"Run aws sso login --profile {Name}, then try again.", Name);

    public override string ToString() => $"SsoProfile {{ Name = {Name}, SessionName = {SessionName ?? "(legacy form)"}, Account = {AccountId}, Role = {RoleName} }}";
}

// An SSO token as the AWS CLI caches it: a JSON object with accessToken and expiresAt (ISO 8601 UTC) and, for
// sessions, refreshToken, clientId, clientSecret, registrationExpiresAt, region and startUrl. Members this class does
// not know are kept when it is written back.
internal sealed class SsoToken
{
    private static readonly JsonReaderOptions s_readerOptions = new() { CommentHandling = JsonCommentHandling.Skip };
    private readonly byte[] _json;

    private SsoToken(byte[] json, Dictionary<string, string> values, string accessToken, DateTimeOffset expiresAt)
    {
        _json = json;
        AccessToken = accessToken;
        ExpiresAt = expiresAt;
        RefreshToken = values.GetValueOrDefault("refreshToken");
        ClientId = values.GetValueOrDefault("clientId");
        ClientSecret = values.GetValueOrDefault("clientSecret");
        RegistrationExpiresAt = TryParseTime(values.GetValueOrDefault("registrationExpiresAt"), out var registration) ? registration : null;
    }

    public string AccessToken { get; }
    public DateTimeOffset ExpiresAt { get; }
    public string? RefreshToken { get; }
    public string? ClientId { get; }
    public string? ClientSecret { get; }
    public DateTimeOffset? RegistrationExpiresAt { get; }

    public ReadOnlySpan<byte> FileContent => _json;

    // Null with the problem (which never quotes the text) when the JSON is not a usable token.
    public static SsoToken? Parse(byte[] json, out string? problem)
    {
        if (Json.TryReadObject(json, out problem) is not { } values) return null;
        if (values.GetValueOrDefault("accessToken") is not { } accessToken || !IsHeaderSafe(accessToken))
            problem = "no accessToken, or one that is empty or has white space";
        else if (!TryParseTime(values.GetValueOrDefault("expiresAt"), out var expiresAt))
            problem = "no expiresAt, or one that is not an ISO 8601 time";
        else
            return new SsoToken(json, values, accessToken, expiresAt);
        return null;
    }

    // Why SSO OIDC cannot refresh this token; null when it can.
    public string? CannotRefresh(DateTimeOffset now) =>
        RefreshToken is null || ClientId is null || ClientSecret is null ? "the cached token has no refresh token and client registration"
        : RegistrationExpiresAt <= now ? $"its client registration expired at {Time(RegistrationExpiresAt.Value)}"
        : null;

    // The token SSO OIDC gave, as the cache file holds it: this one's JSON with the new members.
    public SsoToken Refreshed(string accessToken, DateTimeOffset expiresAt, string? refreshToken)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            var reader = new Utf8JsonReader(_json, s_readerOptions);
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool replaced = reader.ValueTextEquals("accessToken") || reader.ValueTextEquals("expiresAt") || (refreshToken is not null && reader.ValueTextEquals("refreshToken"));
                string name = reader.GetString()!;
                reader.Read();
                if (replaced) { reader.Skip(); continue; }
                writer.WritePropertyName(name);
                writer.WriteRawValue(ValueBytes(ref reader), skipInputValidation: true);
            }
            writer.WriteString("accessToken", accessToken);
            writer.WriteString("expiresAt", Time(expiresAt));
            if (refreshToken is not null) writer.WriteString("refreshToken", refreshToken);
            writer.WriteEndObject();
        }
        return Parse(buffer.WrittenSpan.ToArray(), out _) ?? throw new InvalidOperationException("A refreshed SSO token did not read back.");
    }

    // The raw text of the value at the reader (a nested one whole), leaving the reader on its last token.
    private ReadOnlySpan<byte> ValueBytes(ref Utf8JsonReader reader)
    {
        int start = (int)reader.TokenStartIndex;
        reader.Skip();
        return _json.AsSpan(start, (int)reader.BytesConsumed - start);
    }

    // The CLI writes 2030-01-01T12:00:00Z; before version 2.1.14 it wrote 2030-01-01T12:00:00UTC.
    private static bool TryParseTime(string? text, out DateTimeOffset time)
    {
        time = default;
        if (text is null) return false;
        if (text.EndsWith("UTC", StringComparison.Ordinal)) text = string.Concat(text.AsSpan(0, text.Length - 3), "Z");
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out time);
    }

    public static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    // A token goes into a header: no white space, no control characters.
    public static bool IsHeaderSafe(string value)
    {
        if (value.Length == 0) return false;
        foreach (char c in value) if (c <= ' ' || c == '\u007f') return false;
        return true;
    }

    public override string ToString() => $"SsoToken {{ ExpiresAt = {Time(ExpiresAt)}, Refreshable = {(RefreshToken is not null ? "yes" : "no")} }}";
}

// The CLI's token cache: ~/.aws/sso/cache/<SHA-1 hex of the session name or start URL>.json.
internal static class SsoTokenCache
{
    public static string PathFor(string home, string cacheKey) =>
        Path.Join(home, ".aws", "sso", "cache", Convert.ToHexString(SHA1.HashData(Encoding.UTF8.GetBytes(cacheKey))).ToLowerInvariant() + ".json");

    // The cached token; an error that says to sign in when there is none or it is unreadable.
    public static SsoToken Read(string path, SsoProfile profile)
    {
        byte[] json;
        try
        {
            json = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw profile.LoginError($"there is no SSO token cached for it ({path} does not exist)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw profile.LoginError($"its SSO token cache {path} cannot be read ({e.Message})");
        }
        return SsoToken.Parse(json, out string? problem) ?? throw profile.LoginError($"its SSO token cache {path} holds {problem}");
    }

    // Written to a new file beside it, then renamed over it: a reader (the CLI, another process) sees the old file
    // or the new one, never half of one, whatever happens meanwhile. Readable by the user only, as the CLI makes it.
    public static void Write(string path, ReadOnlySpan<byte> json)
    {
        string temporary = $"{path}.{Convert.ToHexString(RandomNumberGenerator.GetBytes(8))}.tmp";
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(json);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temporary); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            throw;
        }
    }
}

// SSO OIDC CreateToken with the refresh_token grant: JSON in and out, not signed.
internal static class SsoOidc
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<(string AccessToken, TimeSpan ExpiresIn, string? RefreshToken)> RefreshAsync(AwsConfigContext context, SsoProfile profile,
        SsoToken token, CancellationToken cancellationToken)
    {
        var uri = profile.OidcUri(context);
        string what = $"SSO OIDC at {UriText.Show(uri)}";
        var (status, body) = await AwsHttp.SendUnsignedAsync(context, "SSO OIDC", HttpMethod.Post, uri, [], CreateTokenRequest(token), Timeout,
            $"{what} did not answer", profile.Name, cancellationToken).ConfigureAwait(false);
        if (status != HttpStatusCode.OK)
            throw new AwsCredentialsException($"{what} refused to refresh the token with HTTP {(int)status}{Json.ErrorDetail(body)}", profile.Name);
        var values = Json.ReadObject(body, what + " answered", profile.Name);
        if (values.GetValueOrDefault("accessToken") is not { } accessToken || !SsoToken.IsHeaderSafe(accessToken))
            throw new AwsCredentialsException($"{what} answered without an accessToken, or with one that is empty or has white space", profile.Name);
        if (!int.TryParse(values.GetValueOrDefault("expiresIn"), NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds == 0)
            throw new AwsCredentialsException($"{what} answered without an expiresIn in whole seconds", profile.Name);
        string? refreshToken = values.GetValueOrDefault("refreshToken") is { Length: > 0 } r ? r : null;
        return (accessToken, TimeSpan.FromSeconds(seconds), refreshToken);
    }

    private static byte[] CreateTokenRequest(SsoToken token)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("grantType", "refresh_token");
            writer.WriteString("clientId", token.ClientId);
            writer.WriteString("clientSecret", token.ClientSecret);
            writer.WriteString("refreshToken", token.RefreshToken);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

}

// The SSO portal's GetRoleCredentials: the token in a header of its own, not signed; the answer
// {"roleCredentials": {"accessKeyId", "secretAccessKey", "sessionToken", "expiration": epoch milliseconds}}.
internal static class SsoPortal
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task<AwsCredentials> GetRoleCredentialsAsync(AwsConfigContext context, SsoProfile profile, string accessToken, CancellationToken cancellationToken)
    {
        var uri = profile.PortalUri(context);
        string what = $"the SSO portal at {UriText.Show(uri)}";
        var (status, body) = await AwsHttp.SendUnsignedAsync(context, "SSO", HttpMethod.Get, uri, [new("x-amz-sso_bearer_token", accessToken)], null, Timeout,
            $"Profile '{profile.Name}': {what} did not answer", profile.Name, cancellationToken).ConfigureAwait(false);
        string answered = $"HTTP {(int)status}{Json.ErrorDetail(body)}";
        return status switch
        {
            HttpStatusCode.OK => ReadRoleCredentials(body, $"Profile '{profile.Name}': {what}", profile.Name),
            HttpStatusCode.Unauthorized => throw profile.LoginError($"{what} refused its SSO token ({answered}): the sign-in has expired or was ended"),
            HttpStatusCode.Forbidden or HttpStatusCode.NotFound => throw profile.LoginError(
                $"{what} refused role {profile.RoleName} in account {profile.AccountId} ({answered}): check sso_account_id and sso_role_name, and that the role is assigned to the user who signs in"),
            _ => throw new AwsCredentialsException($"Profile '{profile.Name}': {what} answered {answered}.", profile.Name),
        };
    }


    private static AwsCredentials ReadRoleCredentials(byte[] body, string what, string profileName)
    {
        Json.ReadObject(body, what + " answered", profileName);
        var values = Json.TryReadObject(Member(body, "roleCredentials"), out _)
            ?? throw new AwsCredentialsException($"{what} answered without roleCredentials.", profileName);
        string? expiration = null;
        if (values.GetValueOrDefault("expiration") is { } milliseconds)
        {
            if (!long.TryParse(milliseconds, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long ms)
                || ms < DateTimeOffset.MinValue.ToUnixTimeMilliseconds() || ms > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
                throw new AwsCredentialsException($"{what} gave an expiration '{Json.Clip(milliseconds)}' that is not a time in milliseconds since 1970.", profileName);
            expiration = SsoToken.Time(DateTimeOffset.FromUnixTimeMilliseconds(ms));
        }
        return Json.MakeCredentials(values.GetValueOrDefault("accessKeyId"), values.GetValueOrDefault("secretAccessKey"),
            values.GetValueOrDefault("sessionToken"), expiration, "sessionToken", what, profileName);
    }

    // The raw text of a top-level member whose value is an object; empty when there is none.
    private static ReadOnlySpan<byte> Member(byte[] json, string name)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool wanted = reader.ValueTextEquals(name);
            reader.Read();
            int start = (int)reader.TokenStartIndex;
            bool isObject = reader.TokenType == JsonTokenType.StartObject;
            reader.Skip();
            if (wanted && isObject) return json.AsSpan(start, (int)reader.BytesConsumed - start);
        }
        return default;
    }

}

// The credentials of one SSO profile, kept until 5 minutes before they expire (callers are served one at a time:
// the chain's refresh, or a role's source), with the token refreshed at most once every 30 seconds.
internal sealed class SsoSource(AwsConfigContext context, SsoProfile profile)
{
    internal static readonly TimeSpan TokenRefreshWindow = TimeSpan.FromMinutes(5);
    internal static readonly TimeSpan TokenRefreshInterval = TimeSpan.FromSeconds(30);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private AwsCredentials? _credentials;
    private SsoToken? _unsaved; // a refreshed token that could not be written back: used until the file has a newer one
    private DateTimeOffset _nextRefresh = DateTimeOffset.MinValue;

    public SsoProfile Profile => profile;

    public async Task<AwsCredentials> GetCredentialsAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_credentials is { Expiration: { } expires } cached && context.Clock.GetUtcNow() + AwsCredentialsChain.RefreshWindow < expires) return cached;
            string accessToken = await AccessTokenAsync(cancellationToken).ConfigureAwait(false);
            return _credentials = await SsoPortal.GetRoleCredentialsAsync(context, profile, accessToken, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    // The cached token, refreshed first when it is about to expire (and can be). A failed refresh leaves the
    // token in use while it is valid.
    private async Task<string> AccessTokenAsync(CancellationToken cancellationToken)
    {
        string home = context.HomeDirectory ?? throw profile.LoginError("there is no home directory in which to find its SSO token cache (set HOME)");
        string path = SsoTokenCache.PathFor(home, profile.CacheKey);
        var token = SsoTokenCache.Read(path, profile);
        if (_unsaved is { } unsaved && unsaved.ExpiresAt > token.ExpiresAt) token = unsaved;
        var now = context.Clock.GetUtcNow();
        if (now + TokenRefreshWindow < token.ExpiresAt) return token.AccessToken;

        string? notRefreshed = profile.SessionName is null ? "profiles without sso_session cannot refresh it" : token.CannotRefresh(now);
        if (notRefreshed is null && now >= _nextRefresh)
        {
            _nextRefresh = now + TokenRefreshInterval;
            try
            {
                return (await RefreshAsync(path, token, now, cancellationToken).ConfigureAwait(false)).AccessToken;
            }
            catch (AwsCredentialsException e)
            {
                notRefreshed = "refreshing it failed: " + e.Message;
            }
        }
        if (now < token.ExpiresAt) return token.AccessToken;
        throw profile.LoginError($"its SSO token expired at {SsoToken.Time(token.ExpiresAt)}" + (notRefreshed is null ? "" : $" ({notRefreshed})"));
    }

    private async Task<SsoToken> RefreshAsync(string path, SsoToken token, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var (accessToken, expiresIn, refreshToken) = await SsoOidc.RefreshAsync(context, profile, token, cancellationToken).ConfigureAwait(false);
        var refreshed = token.Refreshed(accessToken, now + expiresIn, refreshToken);
        try
        {
            SsoTokenCache.Write(path, refreshed.FileContent);
            _unsaved = null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _unsaved = refreshed; // the token is good: a read-only cache directory must not stop its use
        }
        return refreshed;
    }
}

// The JSON AWS answers with (credential sources, service errors, a function's error object): one flat object read
// with Utf8JsonReader, no reflection. And the clipping of text quoted in error messages.
internal static class Json
{
    private const int MaxQuoted = 500;

    public static AwsCredentials ReadCredentials(byte[] body, string tokenField, string what, string? profileName)
    {
        var values = ReadObject(body, what + " answered", profileName);
        if (values.GetValueOrDefault("Code") is { } code && code != "Success")
            throw new AwsCredentialsException($"{what} answered Code {code}{(values.GetValueOrDefault("Message") is { } m ? ": " + Clip(m) : "")}.", profileName);
        return MakeCredentials(values.GetValueOrDefault("AccessKeyId"), values.GetValueOrDefault("SecretAccessKey"),
            values.GetValueOrDefault(tokenField), values.GetValueOrDefault("Expiration"), tokenField, what, profileName);
    }

    public static AwsCredentials MakeCredentials(string? accessKeyId, string? secret, string? token, string? expiration, string tokenField, string what, string? profileName)
    {
        if (string.IsNullOrEmpty(accessKeyId) || string.IsNullOrEmpty(secret))
            throw new AwsCredentialsException($"{what} gave no {(string.IsNullOrEmpty(accessKeyId) ? "AccessKeyId" : "SecretAccessKey")}.", profileName);
        DateTimeOffset? expires = null;
        if (!string.IsNullOrEmpty(expiration))
        {
            if (!DateTimeOffset.TryParse(expiration, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
                throw new AwsCredentialsException($"{what} gave an Expiration '{Clip(expiration)}' that is not an ISO 8601 time such as 2030-01-01T00:00:00Z.", profileName);
            expires = parsed;
        }
        try
        {
            return new AwsCredentials(accessKeyId, secret, string.IsNullOrEmpty(token) ? null : token, expires);
        }
        catch (ArgumentException e)
        {
            throw new AwsCredentialsException($"{what} gave malformed credentials ({tokenField} included): {e.Message}", profileName, e);
        }
    }

    // ReadObject for credentials: what is wrong with the JSON is an AwsCredentialsException that names the source.
    public static Dictionary<string, string> ReadObject(byte[] json, string what, string? profileName) =>
        TryReadObject(json, out string? problem) ?? throw new AwsCredentialsException($"{what} {problem}.", profileName);

    // The top-level string, number and boolean members of a JSON object; nested values are skipped. Null when the
    // text is not one JSON object, with the problem, which never quotes the input (it may hold a secret).
    public static Dictionary<string, string>? TryReadObject(ReadOnlySpan<byte> json, out string? problem)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                problem = "something that is not a JSON object";
                return null;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string name = reader.GetString()!;
                reader.Read();
                switch (reader.TokenType)
                {
                    case JsonTokenType.String: values[name] = reader.GetString()!; break;
                    case JsonTokenType.Number or JsonTokenType.True or JsonTokenType.False: values[name] = Encoding.UTF8.GetString(reader.ValueSpan); break;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray: reader.Skip(); break;
                }
            }
            if (reader.Read())
            {
                problem = "JSON with more after the object";
                return null;
            }
        }
        catch (JsonException e)
        {
            // The reader's own message quotes the input: give the position only.
            problem = $"malformed JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})";
            return null;
        }
        catch (InvalidOperationException)
        {
            problem = "JSON with a string that cannot be read (invalid UTF-8 or escape)";
            return null;
        }
        problem = null;
        return values;
    }

    // The code and message of an error answer, for an error message: never the body itself. The shapes of the
    // credential endpoints ({"code", "message"}), the JSON protocols ({"__type": "prefix#Code"}) and OAuth, which SSO
    // OIDC speaks ({"error", "error_description"}).
    public static string ErrorDetail(byte[] body)
    {
        if (TryReadObject(body, out _) is not { } values) return "";
        string? code = values.GetValueOrDefault("code") ?? values.GetValueOrDefault("Code")
            ?? (values.GetValueOrDefault("__type") is { } type ? type[(type.LastIndexOf('#') + 1)..] : values.GetValueOrDefault("error"));
        string? message = values.GetValueOrDefault("message") ?? values.GetValueOrDefault("Message") ?? values.GetValueOrDefault("error_description");
        return code is null && message is null ? "" : $": {code}{(code is not null && message is not null ? ": " : "")}{(message is null ? "" : Clip(message))}";
    }

    // Text quoted in an error message: its first 500 characters.
    public static string Clip(string text) => text.Length <= MaxQuoted ? text : string.Concat(text.AsSpan(0, MaxQuoted), "...");

    // UTF-8 quoted in an error message, of which only the start is decoded (an answer may be megabytes): 501
    // characters take at most 1,503 bytes, so Clip still sees when there is more.
    public static string Clip(ReadOnlySpan<byte> utf8) => Clip(Encoding.UTF8.GetString(utf8[..Math.Min(utf8.Length, (MaxQuoted + 1) * 3)]));
}

// The process's HttpClients, for the credential sources and the service clients (LambdaClient). Each is made once
// (Lazy: never a second handler); connections are pooled across clients and recycled every few minutes so that DNS
// changes are seen. No redirects: HttpClient would follow one with every header but Authorization, which carries a
// session token or a metadata token to wherever the Location points. No cookies; no decompression (the default:
// setting it, even to None, links the native brotli and zlib into a Native AOT app, about 1 MB).
internal static partial class AwsHttp
{
    private static readonly Lazy<HttpClient> s_direct = new(() => Create(CreateHandler(useProxy: false, connectTimeout: TimeSpan.FromSeconds(1))));
    private static readonly Lazy<HttpMessageHandler> s_proxiedHandler = new(() => CreateHandler(useProxy: true, connectTimeout: TimeSpan.FromSeconds(10)));
    private static readonly Lazy<HttpClient> s_proxied = new(() => Create(s_proxiedHandler.Value));

    // The instance metadata and container endpoints: local addresses, so no proxy and a short connect timeout.
    public static HttpClient Direct => s_direct.Value;

    // AWS services (STS, Lambda), through the system's proxy if one is set.
    public static HttpClient Proxied => s_proxied.Value;

    // The same connections as Proxied, for a caller that brings its own timeout and cancellation (the pipeline): no
    // HttpClient layer, which links a token source of its own to every request it sends with a cancellable token.
    public static HttpMessageHandler ProxiedHandler => s_proxiedHandler.Value;

    private static HttpClient Create(HttpMessageHandler handler) =>
        new(handler)
        {
            Timeout = System.Threading.Timeout.InfiniteTimeSpan, // each call has its own
            // Limits only what HttpClient buffers itself (SendAsync below); LambdaClient streams its answers (up to 6 MB).
            MaxResponseContentBufferSize = 1024 * 1024,
        };

    private static SocketsHttpHandler CreateHandler(bool useProxy, TimeSpan connectTimeout) =>
        new()
        {
            ConnectCallback = ConnectWithKeepAliveAsync,
            UseProxy = useProxy,
            AllowAutoRedirect = false,
            UseCookies = false,
            ConnectTimeout = connectTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        };

    // TCP keep-alive probes after 60 s of silence, every 15 s: a synchronous Lambda invoke may wait 15 minutes for its
    // answer, and a NAT gateway drops a connection that carries no packet for 350 s.
    internal static readonly TimeSpan KeepAliveTime = TimeSpan.FromSeconds(60), KeepAliveInterval = TimeSpan.FromSeconds(15);

    internal static async ValueTask<Stream> ConnectWithKeepAliveAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, (int)KeepAliveTime.TotalSeconds);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, (int)KeepAliveInterval.TotalSeconds);
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static async Task<(HttpStatusCode Status, byte[] Body)> SendAsync(HttpClient client, HttpRequestMessage request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            using var response = await client.SendAsync(request, cts.Token).ConfigureAwait(false);
            return (response.StatusCode, await response.Content.ReadAsByteArrayAsync(cts.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {timeout.TotalSeconds:0.#} s");
        }
    }

    // The unsigned JSON calls of the chain (the SSO portal, SSO OIDC): the status and body of the answer, whatever its
    // status, for the caller to judge. Through AwsClient.cs's pipeline when it is compiled in (retried on throttling and
    // transient errors); else sent once.
    public static async Task<(HttpStatusCode Status, byte[] Body)> SendUnsignedAsync(AwsConfigContext context, string serviceId, HttpMethod method, Uri uri,
        KeyValuePair<string, string>[] headers, byte[]? json, TimeSpan timeout, string failure, string? profileName, CancellationToken cancellationToken)
    {
        Task<(HttpStatusCode, byte[])>? throughPipeline = null;
        SendThroughPipeline(context, serviceId, method, uri, headers, json, timeout, failure, profileName, cancellationToken, ref throughPipeline);
        if (throughPipeline is not null) return await throughPipeline.ConfigureAwait(false);

        using var request = new HttpRequestMessage(method, uri);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        if (json is not null)
        {
            request.Content = new ByteArrayContent(json);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }
        return await SendForCredentialsAsync(Proxied, request, timeout, failure, profileName, cancellationToken).ConfigureAwait(false);
    }

    static partial void SendThroughPipeline(AwsConfigContext context, string serviceId, HttpMethod method, Uri uri, KeyValuePair<string, string>[] headers,
        byte[]? json, TimeSpan timeout, string failure, string? profileName, CancellationToken cancellationToken, ref Task<(HttpStatusCode, byte[])>? answer);

    // A credentials source whose endpoint does not answer fails with what it was doing, not a bare transport error.
    public static async Task<(HttpStatusCode Status, byte[] Body)> SendForCredentialsAsync(HttpClient client, HttpRequestMessage request,
        TimeSpan timeout, string failure, string? profileName, CancellationToken cancellationToken)
    {
        try
        {
            return await SendAsync(client, request, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException)
        {
            throw new AwsCredentialsException($"{failure}: {e.Message}", profileName, e);
        }
    }
}

// URLs as error messages show them: without user-info (user:password@), which may hold a secret.
internal static class UriText
{
    public static string Show(Uri uri) =>
        uri.UserInfo.Length == 0 ? uri.ToString() : uri.GetComponents(UriComponents.AbsoluteUri & ~UriComponents.UserInfo, UriFormat.SafeUnescaped);

    // Text that may be a URL, valid or not: everything from "://" to the last '@' goes (a password may hold any
    // character, '/', '?' and '#' included, so nothing shorter is safe).
    public static string Show(string text)
    {
        int start = text.IndexOf("://", StringComparison.Ordinal);
        int at = text.LastIndexOf('@');
        return start < 0 || at < start ? text : string.Concat(text.AsSpan(0, start + 3), text.AsSpan(at + 1));
    }
}
