using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>A request as the loopback server received it: the request line's parts, every header, the body.</summary>
public sealed record ReceivedRequest(string Method, string Path, string Query, List<KeyValuePair<string, string>> Headers, byte[] Body)
{
    public string? Header(string name) => Headers.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    public string BodyText => Encoding.UTF8.GetString(Body);

    public Dictionary<string, string> Form() =>
        BodyText.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .ToDictionary(p => Uri.UnescapeDataString(p[0]), p => p.Length > 1 ? Uri.UnescapeDataString(p[1].Replace('+', ' ')) : "");
}

/// <summary>An answer of the loopback server.</summary>
public sealed record Reply(int Status, string Body = "", string ContentType = "application/json")
{
    /// <summary>More headers, such as Location.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    /// <summary>A binary body (such as an event stream), sent instead of <see cref="Body"/>.</summary>
    public byte[]? Bytes { get; init; }

    public static Reply Json(string body) => new(200, body);
}

/// <summary>
/// A minimal HTTP/1.1 server on 127.0.0.1 (any free port), keep-alive, Content-Length bodies: enough for the
/// metadata services and STS, and it shows requests exactly as they arrive.
/// </summary>
public sealed class FakeHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<ReceivedRequest, Task<Reply>> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;

    public FakeHttpServer(Func<ReceivedRequest, Reply> handler) : this(r => Task.FromResult(handler(r))) { }

    public FakeHttpServer(Func<ReceivedRequest, Task<Reply>> handler)
    {
        _handler = handler;
        _listener.Start(1024);
        Url = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _acceptLoop = AcceptAsync();
    }

    public Uri Url { get; }

    public ConcurrentQueue<ReceivedRequest> Requests { get; } = new();

    public int Count(string method, string pathPrefix) => Requests.Count(r => r.Method == method && r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = ServeAsync(client);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested) { }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var input = new Reader(stream);
        try
        {
            while (await input.ReadLineAsync(_stop.Token) is { Length: > 0 } requestLine)
            {
                var parts = requestLine.Split(' ');
                string target = parts[1];
                int q = target.IndexOf('?');
                var headers = new List<KeyValuePair<string, string>>();
                for (string line; (line = await input.ReadLineAsync(_stop.Token) ?? "").Length > 0;)
                {
                    int colon = line.IndexOf(':');
                    headers.Add(new(line[..colon], line[(colon + 1)..].Trim()));
                }
                int length = int.Parse(headers.FirstOrDefault(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)).Value ?? "0");
                var body = await input.ReadExactAsync(length, _stop.Token);
                var request = new ReceivedRequest(parts[0], q < 0 ? target : target[..q], q < 0 ? "" : target[(q + 1)..], headers, body);
                Requests.Enqueue(request);
                Reply reply;
                try { reply = await _handler(request); }
                catch (Exception e) { reply = new Reply(500, e.GetType().Name, "text/plain"); }
                var payload = reply.Bytes ?? Encoding.UTF8.GetBytes(reply.Body);
                var head = $"HTTP/1.1 {reply.Status} {(HttpStatusCode)reply.Status}\r\nContent-Type: {reply.ContentType}\r\nContent-Length: {payload.Length}\r\n" +
                    string.Concat(reply.Headers.Select(h => $"{h.Key}: {h.Value}\r\n")) + "\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
                await stream.WriteAsync(payload, _stop.Token);
            }
        }
        catch (Exception) { } // the client went away, or the server stops
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _acceptLoop;
    }

    private sealed class Reader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[16384];
        private int _start, _end;

        public async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
        {
            var line = new StringBuilder();
            while (true)
            {
                if (_start == _end && !await FillAsync(cancellationToken)) return line.Length > 0 ? line.ToString() : null;
                byte b = _buffer[_start++];
                if (b == '\n') return line.ToString().TrimEnd('\r');
                line.Append((char)b);
            }
        }

        public async Task<byte[]> ReadExactAsync(int count, CancellationToken cancellationToken)
        {
            var result = new byte[count];
            for (int done = 0; done < count;)
            {
                if (_start == _end && !await FillAsync(cancellationToken)) throw new EndOfStreamException();
                int n = Math.Min(count - done, _end - _start);
                Array.Copy(_buffer, _start, result, done, n);
                _start += n;
                done += n;
            }
            return result;
        }

        private async Task<bool> FillAsync(CancellationToken cancellationToken)
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, cancellationToken);
            return _end > 0;
        }
    }
}

/// <summary>A clock the test moves by hand.</summary>
public sealed class SteppingClock(DateTimeOffset now) : TimeProvider
{
    private long _ticks = now.UtcTicks;

    public DateTimeOffset Now => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

/// <summary>An injected environment: the values the test sets, and the names the code under test asked for.</summary>
public sealed class FakeEnvironment
{
    private readonly ConcurrentDictionary<string, string> _values = new();

    public ConcurrentQueue<string> NamesRead { get; } = new();

    public string? this[string name]
    {
        get => _values.GetValueOrDefault(name);
        set { if (value is null) _values.TryRemove(name, out _); else _values[name] = value; }
    }

    public string? Get(string name)
    {
        NamesRead.Enqueue(name);
        return _values.GetValueOrDefault(name);
    }
}

/// <summary>A temporary directory standing in for the home directory: .aws/config and .aws/credentials go in it.</summary>
public sealed class TempHome : IDisposable
{
    public TempHome()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("sigv4lite-creds-").FullName;
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, ".aws"));
    }

    public string Directory { get; }

    public string ConfigPath => Path.Combine(Directory, ".aws", "config");

    public string CredentialsPath => Path.Combine(Directory, ".aws", "credentials");

    public string WriteConfig(string text) => Write(ConfigPath, text);

    public string WriteCredentials(string text) => Write(CredentialsPath, text);

    public string Write(string path, string text)
    {
        path = Path.Combine(Directory, path);
        File.WriteAllText(path, text);
        return path;
    }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// A fake STS on loopback: checks AssumeRole's signature with SigV4Verifier against the keys it knows (the test's
/// long-term keys and every set it has issued), answers AssumeRole and AssumeRoleWithWebIdentity with XML shaped like
/// the real service's, and records each call.
/// </summary>
public sealed class FakeSts : IAsyncDisposable
{
    public const string Region = "us-west-2";
    private readonly ConcurrentDictionary<string, AwsCredentials> _known = new();
    private int _issued;

    public FakeSts(SteppingClock clock)
    {
        Clock = clock;
        Server = new FakeHttpServer(Handle);
    }

    public SteppingClock Clock { get; }

    public FakeHttpServer Server { get; }

    public TimeSpan Lifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Each call: action, form fields and the access key id that signed it (null when unsigned).</summary>
    public ConcurrentQueue<(string Action, Dictionary<string, string> Form, string? SignedBy)> Calls { get; } = new();

    /// <summary>When set, answers instead of issuing credentials (for error answers).</summary>
    public Func<Dictionary<string, string>, Reply?>? Override { get; set; }

    public void Trust(AwsCredentials credentials) => _known[credentials.AccessKeyId] = credentials;

    public AwsCredentials? Issued(string accessKeyId) => _known.GetValueOrDefault(accessKeyId);

    private Reply Handle(ReceivedRequest request)
    {
        var form = request.Form();
        string action = form.GetValueOrDefault("Action") ?? "";
        string? signedBy = null;
        if (action == "AssumeRole")
        {
            var verifier = new SigV4Verifier(id => _known.GetValueOrDefault(id), new SigV4Options("sts", Region)) { Clock = Clock };
            var result = verifier.Verify(request.Method, request.Path, request.Query, request.Headers, request.Body);
            if (!result.IsValid) return Error(403, "SignatureDoesNotMatch", result.Error + ": " + result.Message);
            signedBy = result.AccessKeyId;
        }
        else if (action == "AssumeRoleWithWebIdentity")
        {
            if (request.Header("Authorization") is not null) return Error(400, "InvalidRequest", "AssumeRoleWithWebIdentity must be unsigned");
        }
        else return Error(400, "InvalidAction", "Could not find operation " + action);
        Calls.Enqueue((action, form, signedBy));
        if (Override?.Invoke(form) is { } reply) return reply;

        int n = Interlocked.Increment(ref _issued);
        var issued = new AwsCredentials($"ASIASTS{n:D13}", Convert.ToBase64String(RandomNumberGenerator.GetBytes(30)),
            "FwoGZXIvYXdzE" + Convert.ToHexString(RandomNumberGenerator.GetBytes(24)), Clock.Now + Lifetime);
        Trust(issued);
        string extra = action == "AssumeRole" ? "" :
            "<SubjectFromWebIdentityToken>system:serviceaccount:default:app</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><Provider>arn:aws:iam::123456789012:oidc-provider/example</Provider>";
        return new Reply(200, $"""
            <{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
              <{action}Result>
                {extra}
                <AssumedRoleUser>
                  <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{form.GetValueOrDefault("RoleSessionName")}</AssumedRoleId>
                  <Arn>{form.GetValueOrDefault("RoleArn")?.Replace(":role/", ":assumed-role/")}/{form.GetValueOrDefault("RoleSessionName")}</Arn>
                </AssumedRoleUser>
                <Credentials>
                  <AccessKeyId>{issued.AccessKeyId}</AccessKeyId>
                  <SecretAccessKey>{issued.SecretAccessKey}</SecretAccessKey>
                  <SessionToken>{issued.SessionToken}</SessionToken>
                  <Expiration>{issued.Expiration!.Value.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}</Expiration>
                </Credentials>
                <PackedPolicySize>6</PackedPolicySize>
              </{action}Result>
              <ResponseMetadata>
                <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
              </ResponseMetadata>
            </{action}Response>
            """, "text/xml");
    }

    public static Reply Error(int status, string code, string message) => new(status, $"""
        <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <Error>
            <Type>Sender</Type>
            <Code>{code}</Code>
            <Message>{System.Security.SecurityElement.Escape(message)}</Message>
          </Error>
          <RequestId>4a8b6e0e-0000-4000-8000-000000000000</RequestId>
        </ErrorResponse>
        """, "text/xml");

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}

/// <summary>Shared set-up: an environment with IMDS off (no test may reach 169.254.169.254), a temp home, a clock.</summary>
public abstract class CredentialsTestBase
{
    protected static readonly DateTimeOffset Start = new(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);
    protected const string LongTermId = "AKIDEXAMPLE";
    protected const string LongTermSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    protected FakeEnvironment Env = null!;
    protected TempHome Home = null!;
    protected SteppingClock Clock = null!;

    [SetUp]
    public void SetUpEnvironment()
    {
        Env = new FakeEnvironment { ["AWS_EC2_METADATA_DISABLED"] = "true" };
        Home = new TempHome();
        Clock = new SteppingClock(Start);
    }

    [TearDown]
    public void TearDownEnvironment() => Home.Dispose();

    protected AwsConfigOptions Options(Uri? sts = null, Uri? container = null, Uri? imds = null, string? profile = null) => new()
    {
        Profile = profile,
        GetEnvironmentVariable = Env.Get,
        HomeDirectory = Home.Directory,
        Clock = Clock,
        StsEndpoint = sts,
        ContainerCredentialsEndpoint = container,
        InstanceMetadataEndpoint = imds,
    };

    /// <summary>A thousand calls released together, without blocking pool threads (2 cores: blocked threads would serialize them).</summary>
    protected static async Task<AwsCredentials[]> CallConcurrently(IAwsCredentialsProvider provider)
    {
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = Enumerable.Range(0, 1000).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            return await provider.GetCredentialsAsync();
        })).ToArray();
        start.SetResult();
        return await Task.WhenAll(calls);
    }

    /// <summary>Asserts that no secret of these credentials appears in the text.</summary>
    protected static void AssertNoSecret(string text, params AwsCredentials?[] credentials)
    {
        foreach (var c in credentials)
        {
            if (c is null) continue;
            Assert.That(text, Does.Not.Contain(c.SecretAccessKey), "the message must not show a secret access key");
            if (c.SessionToken is not null) Assert.That(text, Does.Not.Contain(c.SessionToken), "the message must not show a session token");
        }
    }

    protected static string CredentialsJson(string id, string secret, string? token, DateTimeOffset? expiration, string tokenField = "Token") =>
        "{" + $"\"Code\":\"Success\",\"LastUpdated\":\"2030-01-01T11:00:00Z\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"{id}\",\"SecretAccessKey\":\"{secret}\"" +
        (token is null ? "" : $",\"{tokenField}\":\"{token}\"") +
        (expiration is null ? "" : $",\"Expiration\":\"{expiration.Value.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}\"") + "}";
}

/// <summary>
/// A fake IAM Identity Center on loopback: the SSO portal (GetRoleCredentials, which checks the bearer token and the
/// account and role) and SSO OIDC (CreateToken with the refresh_token grant, which checks the client and the refresh
/// token). Both refuse signed requests, answer in the real services' shapes and record each call.
/// </summary>
public sealed class FakeSso : IAsyncDisposable
{
    public const string AccountId = "123456789012";
    public const string RoleName = "Developer";
    public const string ClientId = "sso-client-id-0001";
    public const string ClientSecret = "sso-client-secret-eyJraWQiOiJrZXkt";
    private readonly ConcurrentDictionary<string, bool> _accessTokens = new(), _refreshTokens = new();
    private int _issued, _tokens;

    public FakeSso(SteppingClock clock)
    {
        Clock = clock;
        Portal = new FakeHttpServer(HandlePortalAsync);
        Oidc = new FakeHttpServer(HandleOidc);
    }

    public SteppingClock Clock { get; }

    public FakeHttpServer Portal { get; }

    public FakeHttpServer Oidc { get; }

    /// <summary>How long the role credentials the portal issues last.</summary>
    public TimeSpan Lifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long the portal takes to answer.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>When set and it returns a reply, the portal answers that.</summary>
    public Func<ReceivedRequest, Reply?>? PortalOverride { get; set; }

    /// <summary>When set and it returns a reply, SSO OIDC answers that.</summary>
    public Func<ReceivedRequest, Reply?>? OidcOverride { get; set; }

    /// <summary>Called with each set of role credentials issued (to make a fake STS trust them).</summary>
    public Action<AwsCredentials>? OnIssue { get; set; }

    public ConcurrentQueue<AwsCredentials> Issued { get; } = new();

    /// <summary>The bearer token of each GetRoleCredentials call.</summary>
    public ConcurrentQueue<string?> PortalTokens { get; } = new();

    /// <summary>The JSON members of each CreateToken call.</summary>
    public ConcurrentQueue<Dictionary<string, string>> OidcCalls { get; } = new();

    /// <summary>Every access and refresh token the fake knows (for the tests that no secret is shown).</summary>
    public IEnumerable<string> Secrets => _accessTokens.Keys.Concat(_refreshTokens.Keys).Append(ClientSecret)
        .Concat(Issued.SelectMany(c => new[] { c.SecretAccessKey, c.SessionToken! }));

    public void AcceptAccessToken(string token) => _accessTokens[token] = true;

    public void AcceptRefreshToken(string token) => _refreshTokens[token] = true;

    private async Task<Reply> HandlePortalAsync(ReceivedRequest request)
    {
        if (Delay > TimeSpan.Zero) await Task.Delay(Delay);
        if (request.Method != "GET" || request.Path != "/federation/credentials") return new Reply(404, """{"message":"Not found"}""");
        if (request.Header("Authorization") is not null) return new Reply(400, """{"message":"GetRoleCredentials is not signed"}""");
        string? token = request.Header("x-amz-sso_bearer_token");
        PortalTokens.Enqueue(token);
        if (PortalOverride?.Invoke(request) is { } reply) return reply;
        if (token is null || !_accessTokens.ContainsKey(token))
            return new Reply(401, """{"message":"Session token not found or invalid"}""") { Headers = [new("x-amzn-ErrorType", "UnauthorizedException")] };
        var query = request.Query.Split('&').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => Uri.UnescapeDataString(p[1]));
        if (query.GetValueOrDefault("account_id") != AccountId || query.GetValueOrDefault("role_name") != RoleName)
            return new Reply(403, """{"message":"No access"}""") { Headers = [new("x-amzn-ErrorType", "ForbiddenException")] };

        int n = Interlocked.Increment(ref _issued);
        var issued = new AwsCredentials($"ASIASSO{n:D13}", Convert.ToBase64String(RandomNumberGenerator.GetBytes(30)),
            "IQoJb3JpZ2luX2VjE" + Convert.ToHexString(RandomNumberGenerator.GetBytes(24)), Clock.Now + Lifetime);
        Issued.Enqueue(issued);
        OnIssue?.Invoke(issued);
        return Reply.Json($$$"""
            {"roleCredentials":{"accessKeyId":"{{{issued.AccessKeyId}}}","secretAccessKey":"{{{issued.SecretAccessKey}}}",
             "sessionToken":"{{{issued.SessionToken}}}","expiration":{{{issued.Expiration!.Value.ToUnixTimeMilliseconds()}}}}}
            """);
    }

    private Reply HandleOidc(ReceivedRequest request)
    {
        if (request.Method != "POST" || request.Path != "/token") return new Reply(404, """{"message":"Not found"}""");
        if (request.Header("Authorization") is not null) return new Reply(400, """{"error":"invalid_request","error_description":"CreateToken is not signed"}""");
        using var body = System.Text.Json.JsonDocument.Parse(request.Body);
        var call = body.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString());
        OidcCalls.Enqueue(call);
        if (OidcOverride?.Invoke(request) is { } reply) return reply;
        if (call.GetValueOrDefault("grantType") != "refresh_token" || call.GetValueOrDefault("clientId") != ClientId
            || call.GetValueOrDefault("clientSecret") != ClientSecret || !_refreshTokens.ContainsKey(call.GetValueOrDefault("refreshToken") ?? ""))
            return new Reply(400, """{"error":"invalid_grant","error_description":"Invalid refresh token provided"}""") { Headers = [new("x-amzn-ErrorType", "InvalidGrantException")] };
        int n = Interlocked.Increment(ref _tokens);
        string access = $"aoaOIDCACCESS{n}" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        string refresh = $"AtzrOIDCREFRESH{n}" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        AcceptAccessToken(access);
        AcceptRefreshToken(refresh);
        return Reply.Json($$"""{"accessToken":"{{access}}","tokenType":"Bearer","expiresIn":3600,"refreshToken":"{{refresh}}"}""");
    }

    public async ValueTask DisposeAsync()
    {
        await Portal.DisposeAsync();
        await Oidc.DisposeAsync();
    }
}
