namespace SigV4Lite.Tests;

/// <summary>Endpoints from regions and partitions, custom endpoints and their precedence, and the path encoding.</summary>
[TestFixture]
public sealed class LambdaEndpointTests
{
    [TestCase("us-east-1", false, false, "https://lambda.us-east-1.amazonaws.com/")]
    [TestCase("eu-west-3", false, false, "https://lambda.eu-west-3.amazonaws.com/")]
    [TestCase("us-east-1", true, false, "https://lambda-fips.us-east-1.amazonaws.com/")]
    [TestCase("us-east-1", false, true, "https://lambda.us-east-1.api.aws/")]
    [TestCase("us-east-1", true, true, "https://lambda-fips.us-east-1.api.aws/")]
    [TestCase("cn-north-1", false, false, "https://lambda.cn-north-1.amazonaws.com.cn/")]
    [TestCase("cn-northwest-1", false, true, "https://lambda.cn-northwest-1.api.amazonwebservices.com.cn/")]
    [TestCase("us-gov-west-1", false, false, "https://lambda.us-gov-west-1.amazonaws.com/")]
    [TestCase("us-gov-east-1", true, false, "https://lambda-fips.us-gov-east-1.amazonaws.com/")]
    [TestCase("us-gov-west-1", false, true, "https://lambda.us-gov-west-1.api.aws/")]
    [TestCase("us-iso-east-1", false, false, "https://lambda.us-iso-east-1.c2s.ic.gov/")]
    [TestCase("us-isob-east-1", false, false, "https://lambda.us-isob-east-1.sc2s.sgov.gov/")]
    [TestCase("eu-isoe-west-1", false, false, "https://lambda.eu-isoe-west-1.cloud.adc-e.uk/")]
    [TestCase("us-isof-south-1", false, false, "https://lambda.us-isof-south-1.csp.hci.ic.gov/")]
    [TestCase("eusc-de-east-1", false, false, "https://lambda.eusc-de-east-1.amazonaws.eu/")]
    public void Region_GivesItsPartitionsEndpoint(string region, bool fips, bool dualStack, string expected)
    {
        Assert.That(AwsEndpoint.ForRegion("lambda", region, fips, dualStack).AbsoluteUri, Is.EqualTo(expected));
        using var client = new LambdaClient(new AwsClientOptions
        {
            Region = region, UseFIPSEndpoint = fips, UseDualstackEndpoint = dualStack, Credentials = EmulatorTestSupport.ExampleCredentials, Config = Config(new FakeEnvironment()),
        });
        Assert.That(client.Endpoint.AbsoluteUri, Is.EqualTo(expected));
        Assert.That(client.Region, Is.EqualTo(region));
    }

    [TestCase("us-iso-east-1")]
    [TestCase("us-isob-east-1")]
    public void DualStack_InAPartitionWithoutIt_IsRefused(string region)
    {
        var e = Assert.Throws<ArgumentException>(() => AwsEndpoint.ForRegion("lambda", region, false, true));

        Assert.That(e!.Message, Does.Contain("no dual-stack endpoint").And.Contain(region).And.Contain("turn dual-stack off"));
    }

    [TestCase("")]
    [TestCase("US-EAST-1")]
    [TestCase("us-east-1.evil.example")]
    [TestCase("us east 1")]
    [TestCase("-us-east-1")]
    public void MalformedRegion_IsRefused(string region)
    {
        var e = Assert.Throws<ArgumentException>(() => new LambdaClient(new AwsClientOptions { Region = region }));

        Assert.That(e!.Message, Does.Contain("not a region name").And.Contain("such as us-east-1"));
    }

    [Test]
    public void CustomEndpoint_KeepsItsPath()
    {
        var stub = new StubHandler(_ => StubHandler.Json(System.Net.HttpStatusCode.OK, "{}"));
        using var client = new LambdaClient(new AwsClientOptions
        {
            Region = "eu-central-1", Endpoint = new Uri("http://127.0.0.1:4566/lambda-proxy/"),
            Credentials = EmulatorTestSupport.ExampleCredentials, HttpHandler = stub,
        });

        client.InvokeAsync(new LambdaRequest("f", "{}")).GetAwaiter().GetResult();

        Assert.That(stub.Uris.Single(), Is.EqualTo("http://127.0.0.1:4566/lambda-proxy/2015-03-31/functions/f/invocations"));
        Assert.That(stub.Headers.Single()["Authorization"], Does.Contain("/eu-central-1/lambda/aws4_request"));
    }

    [Test]
    public void CustomEndpoint_WithUserInfo_IsRefusedAtConstruction()
    {
        var lambda = Assert.Throws<ArgumentException>(() => new LambdaClient(new AwsClientOptions { Region = "us-east-1", Endpoint = new Uri("https://admin:pa55w0rd@127.0.0.1:4566/") }));
        var any = Assert.Throws<ArgumentException>(() => new AwsClient(AwsService.DynamoDB, new AwsClientOptions { Region = "us-east-1", Endpoint = new Uri("https://admin:pa55w0rd@127.0.0.1:4566/") }));

        foreach (var e in new[] { lambda!, any! })
        {
            Assert.That(e.Message, Does.StartWith("The endpoint 'https://127.0.0.1:4566/' has user-info").And.Not.Contain("pa55w0rd").And.Not.Contain("admin"));
            Assert.That(e.ToString(), Does.Not.Contain("pa55w0rd"));
        }
    }

    // The exception is public: whatever endpoint it is given, its message shows no user-info.
    [Test]
    public void ConnectionFailure_NeverShowsAnEndpointsUserInfo()
    {
        var e = new AwsConnectionException("Lambda", "Invoke", new Uri("http://admin:pa55w0rd@127.0.0.1:9/"), 3, new HttpRequestException("Connection refused"));

        Assert.That(e.Message, Is.EqualTo("Lambda Invoke could not be reached at http://127.0.0.1:9/: Connection refused (3 attempts made)"));
    }

    [Test]
    public void CustomEndpoint_WithAQuery_IsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => new LambdaClient(new AwsClientOptions { Region = "us-east-1", Endpoint = new Uri("https://example.com/?x=1") }));

        Assert.That(e!.Message, Does.Contain("without a query"));
    }

    // Code > AWS_ENDPOINT_URL_LAMBDA > AWS_ENDPOINT_URL > the region's endpoint; AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
    // turns off the environment's.
    [Test]
    public void EndpointPrecedence_CodeThenServiceVariableThenGlobalVariable()
    {
        var environment = new FakeEnvironment
        {
            ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9001",
            ["AWS_ENDPOINT_URL_LAMBDA"] = "http://127.0.0.1:9002",
        };

        Assert.That(Endpoint(new Uri("http://127.0.0.1:9003")), Is.EqualTo("http://127.0.0.1:9003/"));
        Assert.That(Endpoint(null), Is.EqualTo("http://127.0.0.1:9002/"));
        environment["AWS_ENDPOINT_URL_LAMBDA"] = null;
        Assert.That(Endpoint(null), Is.EqualTo("http://127.0.0.1:9001/"));
        environment["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true";
        Assert.That(Endpoint(null), Is.EqualTo("https://lambda.ap-south-1.amazonaws.com/"));
        Assert.That(Endpoint(new Uri("http://127.0.0.1:9003")), Is.EqualTo("http://127.0.0.1:9003/"));

        string Endpoint(Uri? code)
        {
            using var client = new LambdaClient(new AwsClientOptions
            {
                Region = "ap-south-1", Endpoint = code, Credentials = EmulatorTestSupport.ExampleCredentials, Config = Config(environment),
            });
            return client.Endpoint.AbsoluteUri;
        }
    }

    [Test]
    public void MalformedEndpointVariable_IsAConfigurationError()
    {
        var environment = new FakeEnvironment { ["AWS_ENDPOINT_URL_LAMBDA"] = "localhost:4566" };

        var e = Assert.Throws<AwsConfigurationException>(() => new LambdaClient(new AwsClientOptions { Region = "us-east-1", Config = Config(environment) }));

        Assert.That(e!.Message, Is.EqualTo("The environment variable AWS_ENDPOINT_URL_LAMBDA is 'localhost:4566', which is not an absolute http or https URL without a query; write one such as http://localhost:4566."));
    }

    [Test]
    public void Region_FromTheEnvironment_AndAClearErrorWithoutOne()
    {
        var environment = new FakeEnvironment { ["AWS_DEFAULT_REGION"] = "sa-east-1" };
        using (var client = new LambdaClient(new AwsClientOptions { Credentials = EmulatorTestSupport.ExampleCredentials, Config = Config(environment) }))
            Assert.That(client.Region, Is.EqualTo("sa-east-1"));
        environment["AWS_REGION"] = "ca-central-1";
        using (var client = new LambdaClient(new AwsClientOptions { Credentials = EmulatorTestSupport.ExampleCredentials, Config = Config(environment) }))
            Assert.That(client.Region, Is.EqualTo("ca-central-1"));

        environment["AWS_REGION"] = null;
        environment["AWS_DEFAULT_REGION"] = null;
        var e = Assert.Throws<AwsConfigurationException>(() => new LambdaClient(new AwsClientOptions { Config = Config(environment) }));
        Assert.That(e!.Message, Does.Contain("No AWS region").And.Contain("AWS_REGION").And.Contain("in code"));
    }

    // Config reaches all three resolutions: the profile it names gives the region, the endpoint and the credentials.
    [Test]
    public async Task Config_NamesAProfile_ThatGivesRegionEndpointAndCredentials()
    {
        await using var emulator = await SigV4Lite.Emulator.LambdaEmulator.StartAsync(new SigV4Lite.Emulator.LambdaEmulatorOptions { Region = "eu-west-1" });
        emulator.AddFunction("echo", SigV4Lite.Emulator.LambdaEmulator.Echo);
        using var home = new TempHome();
        home.WriteConfig($"[profile dev]\nregion = eu-west-1\nendpoint_url = {emulator.Endpoint}\n");
        home.WriteCredentials("[dev]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n");
        using var client = new LambdaClient(new AwsClientOptions
        {
            Config = new AwsConfigOptions { GetEnvironmentVariable = new FakeEnvironment().Get, HomeDirectory = home.Directory, Profile = "dev" },
        });

        var response = await client.InvokeAsync(new LambdaRequest("echo", "{}"));

        Assert.That(client.Region, Is.EqualTo("eu-west-1"));
        Assert.That(client.Endpoint, Is.EqualTo(emulator.Endpoint));
        Assert.That(response.StatusCode, Is.EqualTo(200));
    }

    // Without Config, the real process environment is read.
    [Test]
    public void WithoutConfig_TheProcessEnvironmentIsRead()
    {
        string? saved = Environment.GetEnvironmentVariable("AWS_REGION");
        Environment.SetEnvironmentVariable("AWS_REGION", "ap-northeast-3");
        try
        {
            using var client = new LambdaClient(new AwsClientOptions { Endpoint = new Uri("http://127.0.0.1:9"), Credentials = EmulatorTestSupport.ExampleCredentials });
            Assert.That(client.Region, Is.EqualTo("ap-northeast-3"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("AWS_REGION", saved);
        }
    }

    [Test]
    public async Task Credentials_FromTheEnvironment_AreReadAtTheFirstCall()
    {
        await using var emulator = await SigV4Lite.Emulator.LambdaEmulator.StartAsync();
        emulator.AddFunction("echo", SigV4Lite.Emulator.LambdaEmulator.Echo);
        var environment = new FakeEnvironment();
        using var client = new LambdaClient(new AwsClientOptions { Region = "us-east-1", Endpoint = emulator.Endpoint, Config = Config(environment) });

        // Made without credentials: only the call needs them.
        environment["AWS_ACCESS_KEY_ID"] = "AKIDEXAMPLE";
        environment["AWS_SECRET_ACCESS_KEY"] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        var response = await client.InvokeAsync(new LambdaRequest("echo", "{}"));

        Assert.That(response.StatusCode, Is.EqualTo(200));
    }

    [Test]
    public void MissingCredentials_FailTheCall_WithAClearMessage()
    {
        // The rest of the default chain finds nothing (no profile, no container), and never leaves this machine.
        var environment = new FakeEnvironment
        {
            ["AWS_SECRET_ACCESS_KEY"] = "a-secret-that-must-not-show-in-messages0",
            ["AWS_EC2_METADATA_DISABLED"] = "true",
        };
        using var client = new LambdaClient(new AwsClientOptions { Region = "us-east-1", Endpoint = new Uri("http://127.0.0.1:9"), Config = Config(environment) });

        var half = Assert.ThrowsAsync<AwsConfigurationException>(() => client.InvokeAsync(new LambdaRequest("echo", "{}")));
        Assert.That(half!.Message, Does.Contain("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"));
        Assert.That(half.Message, Does.Not.Contain("a-secret-that-must-not-show"));

        environment["AWS_SECRET_ACCESS_KEY"] = null;
        using var second = new LambdaClient(new AwsClientOptions { Region = "us-east-1", Endpoint = new Uri("http://127.0.0.1:9"), Config = Config(environment) });
        var none = Assert.ThrowsAsync<AwsCredentialsException>(() => second.InvokeAsync(new LambdaRequest("echo", "{}")));
        Assert.That(none!.Message, Does.Contain("No AWS credentials").And.Contain("AWS_ACCESS_KEY_ID").And.Contain("AWS_EC2_METADATA_DISABLED"));
    }

    [TestCase("my-function", "my-function")]
    [TestCase("my-function:live", "my-function%3Alive")]
    [TestCase("arn:aws:lambda:us-west-2:123456789012:function:f:$LATEST", "arn%3Aaws%3Alambda%3Aus-west-2%3A123456789012%3Afunction%3Af%3A%24LATEST")]
    [TestCase("a/b c?d#e&f=g+h", "a%2Fb%20c%3Fd%23e%26f%3Dg%2Bh")]
    [TestCase("A-Z_a.z~0", "A-Z_a.z~0")]
    [TestCase("é✓😀", "%C3%A9%E2%9C%93%F0%9F%98%80")]
    [TestCase("%41", "%2541")]
    public void EncodeSegment_EncodesEveryReservedCharacter(string value, string expected)
    {
        Assert.That(LambdaWire.EncodeSegment(value), Is.EqualTo(expected));
    }

    [Test]
    public void EncodeSegment_RefusesAnUnpairedSurrogate()
    {
        var e = Assert.Throws<ArgumentException>(() => LambdaWire.EncodeSegment("f\ud800x"));

        Assert.That(e!.Message, Does.Contain("unpaired surrogate"));
    }

    // An injected environment and a home directory that does not exist: no shared config file is read.
    private static AwsConfigOptions Config(FakeEnvironment environment) => new()
    {
        GetEnvironmentVariable = environment.Get,
        HomeDirectory = Path.Combine(Path.GetTempPath(), "sigv4lite-no-such-home"),
    };
}
