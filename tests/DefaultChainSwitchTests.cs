using NUnit.Framework;

namespace SigV4Lite.Tests;

// The feature switch an app sets to leave the default credentials chain out of a trimmed or Native AOT build
// (samples/AotInvoke sets it; bench/README.md measures what it saves). The switch is process-wide: these tests set it
// and put it back, one at a time.
[NonParallelizable]
public class DefaultChainSwitchTests
{
    private const string Switch = "SigV4Lite.DefaultCredentialsChain.IsSupported";

    private static AwsClientOptions Options(AwsCredentials? credentials, Uri? endpoint = null) => new()
    {
        Region = "us-east-1",
        Endpoint = endpoint ?? new Uri("http://127.0.0.1:9/"),
        Credentials = credentials,
        Config = new AwsConfigOptions { GetEnvironmentVariable = _ => null },
    };

    [TearDown]
    public void PutTheSwitchBack() => AppContext.SetSwitch(Switch, true);

    [Test]
    public void WithTheChainOffAClientWithoutCredentialsIsRefusedSayingWhatToDo()
    {
        AppContext.SetSwitch(Switch, false);
        var e = Assert.Throws<AwsConfigurationException>(() => new AwsClient(AwsService.Lambda, Options(null)))!;
        Assert.That(e.Message, Does.Contain("No credentials were given (AwsClientOptions.Credentials)").And.Contain(Switch + " is false").And.Contain("Give the credentials"));
        Assert.That(() => new LambdaClient(Options(null)), Throws.InstanceOf<AwsConfigurationException>());
    }

    [Test]
    public async Task WithTheChainOffGivenCredentialsStillSign()
    {
        AppContext.SetSwitch(Switch, false);
        await using var server = new FakeHttpServer(_ => new Reply(200, "{}", "application/json"));
        using var client = new LambdaClient(Options(new AwsCredentials("AKIDEXAMPLE", "secret"), server.Url));
        var response = await client.InvokeAsync(new LambdaRequest("f", "{}"));
        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(server.Requests.Single().Header("Authorization"), Does.StartWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    }

    // (An AppContext switch cannot be unset once set: "on" stands for "not set" too, which the other tests of the
    // pipeline exercise.)
    [Test]
    public async Task WithTheSwitchOnAClientWithoutCredentialsSignsWithTheChains()
    {
        AppContext.SetSwitch(Switch, true);
        await using var server = new FakeHttpServer(_ => new Reply(200, "{}", "application/json"));
        var environment = new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = "AKIDFROMTHEENV", ["AWS_SECRET_ACCESS_KEY"] = "secret" };
        using var client = new LambdaClient(new AwsClientOptions
        {
            Region = "us-east-1",
            Endpoint = server.Url,
            Config = new AwsConfigOptions { GetEnvironmentVariable = name => environment.GetValueOrDefault(name) },
        });
        await client.InvokeAsync(new LambdaRequest("f", "{}"));
        Assert.That(server.Requests.Single().Header("Authorization"), Does.StartWith("AWS4-HMAC-SHA256 Credential=AKIDFROMTHEENV/"));
    }
}
