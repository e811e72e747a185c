using System.Globalization;
using System.Net;
using SigV4Lite.Emulator;
using static SigV4Lite.Tests.EmulatorTestSupport;

namespace SigV4Lite.Tests;

/// <summary>The emulator checks signatures as Lambda does, with the library's verifier, and answers in AWS's words.</summary>
public class EmulatorSignatureTests
{
    private const string WrongSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEYXX";
    private LambdaEmulator _emulator = null!;
    private RecordingFunction _function = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _emulator = await LambdaEmulator.StartAsync();
        _function = new RecordingFunction();
        _emulator.AddFunction("guarded", _function.Handle);
    }

    [OneTimeTearDown]
    public async Task StopAsync() => await _emulator.DisposeAsync();

    [Test]
    public async Task AcceptsARequestSignedWithTheExampleCredentials()
    {
        using var client = SignedClient(_emulator);
        using var response = await client.SendAsync(Invoke("arn:aws:lambda:us-east-1:123456789012:function:guarded", qualifier: "$LATEST"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task RefusesAnUnsignedRequestWith403MissingAuthenticationToken()
    {
        int calls = _function.Calls.Count;
        long failures = _emulator.Counters.SignatureFailures;
        using var client = UnsignedClient(_emulator);
        using var response = await client.SendAsync(Invoke("guarded"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "MissingAuthenticationTokenException", messageField: "Message");
        Assert.That(message, Is.EqualTo("Missing Authentication Token"));
        Assert.That(_function.Calls, Has.Count.EqualTo(calls));
        Assert.That(_emulator.Counters.SignatureFailures, Is.EqualTo(failures + 1));
    }

    [Test]
    public async Task RefusesAWrongSecretWith403InvalidSignatureSayingWhatTheServerComputed()
    {
        int calls = _function.Calls.Count;
        long failures = _emulator.Counters.SignatureFailures;
        using var client = SignedClient(_emulator, new AwsCredentials("AKIDEXAMPLE", WrongSecret));
        using var response = await client.SendAsync(Invoke("123456789012:function:guarded"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "InvalidSignatureException", messageField: "Message");

        Assert.That(message, Does.StartWith("The request signature we calculated does not match the signature you provided."));
        // The canonical request the emulator computed holds the path as sent, encoded once more: %3A became %253A.
        Assert.That(message, Does.Contain("/2015-03-31/functions/123456789012%253Afunction%253Aguarded/invocations"));
        Assert.That(message, Does.Contain("AWS4-HMAC-SHA256"));
        Assert.That(message, Does.Not.Contain(WrongSecret).And.Not.Contain(ExampleCredentials.SecretAccessKey));
        Assert.That(_function.Calls, Has.Count.EqualTo(calls));
        Assert.That(_emulator.Counters.SignatureFailures, Is.EqualTo(failures + 1));
    }

    [Test]
    public async Task RefusesAnUnknownAccessKeyWith403UnrecognizedClient()
    {
        long failures = _emulator.Counters.SignatureFailures;
        using var client = SignedClient(_emulator, new AwsCredentials("AKIDUNKNOWN", WrongSecret));
        using var response = await client.SendAsync(Invoke("guarded"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "UnrecognizedClientException", messageField: "Message");
        Assert.That(message, Is.EqualTo("The security token included in the request is invalid."));
        Assert.That(_emulator.Counters.SignatureFailures, Is.EqualTo(failures + 1));
    }

    [Test]
    public async Task RefusesASignatureScopedToAnotherRegion()
    {
        using var client = SignedClient(_emulator, region: "eu-west-1");
        using var response = await client.SendAsync(Invoke("guarded"));
        string message = await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "InvalidSignatureException", messageField: "Message");
        Assert.That(message, Does.Contain("eu-west-1"));
    }

    [Test]
    public async Task RefusesABodyChangedAfterSigning()
    {
        using var client = new HttpClient(new SigV4Handler(ExampleCredentials, new SigV4Options("lambda", "us-east-1"), new SwapBody()))
        {
            BaseAddress = _emulator.Endpoint,
        };
        using var response = await client.SendAsync(Invoke("guarded", "{\"amount\":1}"));
        await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "InvalidSignatureException", messageField: "Message");
    }

    [Test]
    public async Task RefusesARequestSigned20MinutesAgoAndDatesItsAnswerByItsOwnClock()
    {
        var clock = new ShiftedClock(TimeSpan.FromMinutes(20));
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { Clock = clock });
        emulator.AddFunction("guarded", LambdaEmulator.Echo);
        using var client = SignedClient(emulator);
        using var response = await client.SendAsync(Invoke("guarded"));

        string message = await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "InvalidSignatureException", messageField: "Message");
        Assert.That(message, Does.StartWith("Signature expired"));
        // Clients correct their clock from the answer's Date: it must be the emulator's clock, not the machine's.
        Assert.That(response.Headers.Date, Is.Not.Null);
        Assert.That(response.Headers.Date!.Value, Is.EqualTo(clock.GetUtcNow()).Within(TimeSpan.FromSeconds(30)));
    }

    [Test]
    public async Task AcceptsTheCredentialsItIsGivenInsteadOfTheExample()
    {
        var options = new LambdaEmulatorOptions { Credentials = new Dictionary<string, string> { ["AKIDOTHER"] = "other/secret+key" } };
        await using var emulator = await LambdaEmulator.StartAsync(options);
        emulator.AddFunction("guarded", LambdaEmulator.Echo);

        using (var client = SignedClient(emulator, new AwsCredentials("AKIDOTHER", "other/secret+key")))
        using (var response = await client.SendAsync(Invoke("guarded")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var client = SignedClient(emulator))
        using (var response = await client.SendAsync(Invoke("guarded")))
            await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "UnrecognizedClientException", messageField: "Message");
    }

    [Test]
    public async Task ChecksSignaturesInItsOwnRegion()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { Region = "ap-southeast-2" });
        emulator.AddFunction("guarded", LambdaEmulator.Echo);
        using (var client = SignedClient(emulator, region: "ap-southeast-2"))
        using (var response = await client.SendAsync(Invoke("guarded")))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var client = SignedClient(emulator))
        using (var response = await client.SendAsync(Invoke("guarded")))
            await AssertAwsErrorAsync(response, HttpStatusCode.Forbidden, "InvalidSignatureException", messageField: "Message");
    }

    [Test]
    public async Task ServesUnsignedRequestsWhenVerificationIsOff()
    {
        await using var emulator = await LambdaEmulator.StartAsync(new LambdaEmulatorOptions { VerifySignatures = false });
        emulator.AddFunction("open", LambdaEmulator.Echo);
        using var client = UnsignedClient(emulator);
        using var response = await client.SendAsync(Invoke("open"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(emulator.Counters.SignatureFailures, Is.Zero);
    }

    [Test]
    public void RefusesInvalidOptionsAtStart()
    {
        var port = Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LambdaEmulator.StartAsync(new LambdaEmulatorOptions { Port = 70000 }));
        Assert.That(port!.Message, Does.Contain("65535"));
        var region = Assert.ThrowsAsync<ArgumentException>(() => LambdaEmulator.StartAsync(new LambdaEmulatorOptions { Region = "us east 1" }));
        Assert.That(region!.Message, Does.Contain("us-east-1"));
        var secret = Assert.ThrowsAsync<ArgumentException>(() => LambdaEmulator.StartAsync(
            new LambdaEmulatorOptions { Credentials = new Dictionary<string, string> { ["AKIDEMPTY"] = "" } }));
        Assert.That(secret!.Message, Does.Contain("AKIDEMPTY").And.Contain("secret"));
    }

    [Test]
    public void RefusesAnInvalidFunctionOrLimit()
    {
        var name = Assert.Throws<ArgumentException>(() => _emulator.AddFunction("arn:aws:lambda:us-east-1:123456789012:function:x", LambdaEmulator.Echo));
        Assert.That(name!.Message, Does.Contain("bare name").And.Contain("64"));
        Assert.Throws<ArgumentException>(() => _emulator.AddFunction("with.dot", LambdaEmulator.Echo));
        Assert.Throws<ArgumentException>(() => _emulator.AddFunction(new string('a', 65), LambdaEmulator.Echo));
        var limit = Assert.Throws<ArgumentOutOfRangeException>(() => _emulator.AddFunction("ok", LambdaEmulator.Echo, -1));
        Assert.That(limit!.Message, Does.Contain("0 or more"));
        Assert.Throws<ArgumentNullException>(() => _emulator.AddFunction("ok", null!));
    }

    [Test]
    public void ShowsNoSecretInItsOptions()
    {
        Assert.That(_emulator.Options.ToString(), Does.Contain("AKIDEXAMPLE").And.Not.Contain(ExampleCredentials.SecretAccessKey));
    }

    // Replaces the body after the signer has hashed it, with one of the same length.
    private sealed class SwapBody() : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Content = new ByteArrayContent("{\"amount\":9}"u8.ToArray());
            return base.SendAsync(request, cancellationToken);
        }
    }
}
