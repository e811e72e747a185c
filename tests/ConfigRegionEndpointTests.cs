using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>Region and custom endpoint resolution: the SDKs' precedence, and errors that say where they looked.</summary>
public class ConfigRegionEndpointTests : CredentialsTestBase
{
    [Test]
    public void RegionPrecedenceIsCodeThenAwsRegionThenAwsDefaultRegionThenProfile()
    {
        Home.WriteConfig("[default]\nregion = eu-west-1\n[profile dev]\nregion = ap-southeast-2\n");
        Assert.That(AwsRegion.Resolve(null, Options()), Is.EqualTo("eu-west-1"));
        Env["AWS_PROFILE"] = "dev";
        Assert.That(AwsRegion.Resolve(null, Options()), Is.EqualTo("ap-southeast-2"));
        Env["AWS_DEFAULT_REGION"] = "us-west-1";
        Assert.That(AwsRegion.Resolve(null, Options()), Is.EqualTo("us-west-1"));
        Env["AWS_REGION"] = "us-east-2";
        Assert.That(AwsRegion.Resolve(null, Options()), Is.EqualTo("us-east-2"));
        Assert.That(AwsRegion.Resolve("ca-central-1", Options()), Is.EqualTo("ca-central-1"));
    }

    [Test]
    public void RegionFromTheEnvironmentReadsNoFile()
    {
        Home.WriteConfig("this line would be an error");
        Env["AWS_REGION"] = "us-east-1";
        Assert.That(AwsRegion.Resolve(null, Options()), Is.EqualTo("us-east-1"));
        Assert.That(Env.NamesRead, Is.EquivalentTo(new[] { "AWS_REGION" }));
    }

    [Test]
    public void NoRegionIsAClearErrorThatSaysWhereItLooked()
    {
        Home.WriteConfig("[default]\noutput = json\n");
        var e = Assert.Throws<AwsConfigurationException>(() => AwsRegion.Resolve(null, Options()))!;
        Assert.That(e.Message, Is.EqualTo(
            "No AWS region is set. Looked at: the code (none given), AWS_REGION (not set), AWS_DEFAULT_REGION (not set), " +
            $"profile 'default' (no region) in {Home.ConfigPath} and {Home.CredentialsPath} (no such file). " +
            "Set AWS_REGION, add 'region = us-east-1' (for example) to the profile, or give the region in code."));
    }

    [Test]
    public void NoProfileAtAllIsSaidSo()
    {
        var e = Assert.Throws<AwsConfigurationException>(() => AwsRegion.Resolve(null, Options()))!;
        Assert.That(e.Message, Does.Contain($"profile 'default' (no such profile) in {Home.ConfigPath} (no such file) and {Home.CredentialsPath} (no such file)"));
    }

    [Test]
    public void AMissingProfileChosenByAwsProfileIsAnError()
    {
        Home.WriteConfig("[default]\nregion = eu-west-1\n[profile prod]\nregion = eu-west-1\n");
        Env["AWS_PROFILE"] = "prdo";
        var e = Assert.Throws<AwsConfigurationException>(() => AwsRegion.Resolve(null, Options()))!;
        Assert.That(e.ProfileName, Is.EqualTo("prdo"));
        Assert.That(e.Message, Does.StartWith("The AWS profile 'prdo' (from AWS_PROFILE) is not in ").And.Contain("The profiles there are: default, prod."));
    }

    [Test]
    public void MalformedRegionsAreRefusedWhereverTheyComeFrom()
    {
        Assert.Throws<ArgumentException>(() => AwsRegion.Resolve("us-east-1.evil.example/", Options()));
        Env["AWS_REGION"] = "us east";
        var e = Assert.Throws<AwsConfigurationException>(() => AwsRegion.Resolve(null, Options()))!;
        Assert.That(e.Message, Does.Contain("AWS_REGION ('us east') is not a region name"));
        Env["AWS_REGION"] = null;
        Home.WriteConfig("[default]\n\nregion = a/b\n");
        e = Assert.Throws<AwsConfigurationException>(() => AwsRegion.Resolve(null, Options()))!;
        Assert.That((e.FilePath, e.LineNumber, e.ProfileName), Is.EqualTo((Home.ConfigPath, 3, "default")));
    }

    [Test]
    public void EndpointPrecedenceIsCodeThenServiceVariableThenGlobalVariableThenServicesSectionThenProfile()
    {
        Home.WriteConfig("""
            [default]
            endpoint_url = http://127.0.0.1:1001
            services = local
            [services local]
            lambda =
              endpoint_url = http://127.0.0.1:1002
            elastic_beanstalk =
              endpoint_url = http://127.0.0.1:1003
            """);
        Assert.That(AwsEndpoint.Resolve("STS", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1001")), "the profile's global endpoint_url");
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1002")), "the services section");
        Assert.That(AwsEndpoint.Resolve("Elastic Beanstalk", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1003")), "service id lower-cased, spaces to underscores");
        Env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1004";
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1004")));
        Env["AWS_ENDPOINT_URL_LAMBDA"] = "http://127.0.0.1:1005";
        Env["AWS_ENDPOINT_URL_ELASTIC_BEANSTALK"] = "http://127.0.0.1:1006";
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1005")));
        Assert.That(AwsEndpoint.Resolve("Elastic Beanstalk", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1006")));
        Assert.That(AwsEndpoint.Resolve("STS", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1004")));
        Assert.That(AwsEndpoint.Resolve("Lambda", new Uri("https://example.com/"), Options()), Is.EqualTo(new Uri("https://example.com/")));
    }

    [Test]
    public void NoEndpointConfiguredGivesNull()
    {
        Home.WriteConfig("[default]\nregion = us-east-1\n");
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.Null);
    }

    [Test]
    public void IgnoreConfiguredEndpointUrlsLeavesOnlyTheCode()
    {
        Home.WriteConfig("[default]\nendpoint_url = http://127.0.0.1:1001\n");
        Env["AWS_ENDPOINT_URL_LAMBDA"] = "http://127.0.0.1:1005";
        Env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "TRUE";
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.Null);
        Assert.That(AwsEndpoint.Resolve("STS", null, Options()), Is.Null);
        Assert.That(AwsEndpoint.Resolve("Lambda", new Uri("http://127.0.0.1:9/"), Options()), Is.EqualTo(new Uri("http://127.0.0.1:9/")));
    }

    [Test]
    public void TheProfileCanIgnoreConfiguredEndpointsAndTheEnvironmentOverridesIt()
    {
        Home.WriteConfig("[default]\nignore_configured_endpoint_urls = true\nendpoint_url = http://127.0.0.1:1001\n");
        Env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1004";
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.Null, "the profile's flag silences the variables too");
        Env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "false";
        Assert.That(AwsEndpoint.Resolve("Lambda", null, Options()), Is.EqualTo(new Uri("http://127.0.0.1:1004")));
    }

    [Test]
    public void MalformedEndpointsNameWhereTheyAreSet()
    {
        Env["AWS_ENDPOINT_URL_LAMBDA"] = "localhost:4566";
        var e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That(e.Message, Does.StartWith("The environment variable AWS_ENDPOINT_URL_LAMBDA is 'localhost:4566', which is not an absolute http or https URL"));

        Env["AWS_ENDPOINT_URL_LAMBDA"] = null;
        Home.WriteConfig("[default]\nservices = local\n[services local]\nlambda =\n  endpoint_url = ftp://127.0.0.1\n");
        e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That((e.FilePath, e.LineNumber, e.ProfileName), Is.EqualTo((Home.ConfigPath, 4, "default")));
        Assert.That(e.Message, Does.Contain("[services local]"));

        Home.WriteConfig("[default]\nservices = missing\n");
        e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That(e.Message, Does.Contain("no [services missing] section"));
        Assert.That(e.LineNumber, Is.EqualTo(2));

        Home.WriteConfig("[default]\nignore_configured_endpoint_urls = yes\n");
        e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That(e.Message, Does.Contain("must be true or false"));
        Assert.That(e.LineNumber, Is.EqualTo(2));
    }

    // An endpoint is followed by the API's path and query: one with a query of its own is refused wherever it is set.
    [Test]
    public void MalformedEndpointsAreShownWithoutUserInfo()
    {
        Env["AWS_ENDPOINT_URL_LAMBDA"] = "http://user:pa55w0rd@127.0.0.1:9/?x=1";
        var e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That(e.Message, Does.StartWith("The environment variable AWS_ENDPOINT_URL_LAMBDA is 'http://127.0.0.1:9/?x=1', which is not").And.Not.Contain("pa55w0rd"));
        var inCode = Assert.Throws<ArgumentException>(() => AwsEndpoint.Resolve("Lambda", new Uri("https://user:pa55w0rd@example.com/?x=1"), Options()))!;
        Assert.That(inCode.Message, Does.StartWith("The endpoint 'https://example.com/?x=1' must be").And.Not.Contain("pa55w0rd"));
    }

    // User-info in an endpoint means nothing to AWS and may hold a secret: refused wherever it is set, and never shown.
    [Test]
    public void EndpointsWithUserInfoAreRefusedWithoutShowingIt()
    {
        const string Reason = "user-info (user:password@ before the host), which AWS endpoints never take";
        var inCode = Assert.Throws<ArgumentException>(() => AwsEndpoint.Resolve("Lambda", new Uri("https://user:pa55w0rd@lambda.example.com/"), Options()))!;
        Assert.That(inCode.ParamName, Is.EqualTo("configured"));
        Assert.That(inCode.Message, Does.StartWith("The endpoint 'https://lambda.example.com/' has " + Reason).And.Contain("Remove it").And.Not.Contain("pa55w0rd"));

        Env["AWS_ENDPOINT_URL_LAMBDA"] = "http://user:pa55w0rd@127.0.0.1:4566";
        var env = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That(env.Message, Does.StartWith("The environment variable AWS_ENDPOINT_URL_LAMBDA is 'http://127.0.0.1:4566/' with " + Reason).And.Not.Contain("pa55w0rd"));

        Env["AWS_ENDPOINT_URL_LAMBDA"] = null;
        Home.WriteConfig("[default]\nservices = local\n[services local]\nlambda =\n  endpoint_url = http://pa55w0rd@127.0.0.1:4566\n");
        var file = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That((file.FilePath, file.LineNumber), Is.EqualTo((Home.ConfigPath, 4)));
        Assert.That(file.Message, Does.Contain("[services local]").And.Contain(Reason).And.Not.Contain("pa55w0rd"));

        Home.WriteConfig("[default]\nendpoint_url = http://user:@127.0.0.1:4566\n");
        Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()), "a user name alone is refused too");
    }

    [Test]
    public void EndpointsWithAQueryAreRefused()
    {
        Env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566/?x=1";
        var e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That(e.Message, Is.EqualTo("The environment variable AWS_ENDPOINT_URL is 'http://127.0.0.1:4566/?x=1', which is not an absolute http or https URL without a query; write one such as http://localhost:4566."));

        Env["AWS_ENDPOINT_URL"] = null;
        Home.WriteConfig("[default]\nendpoint_url = http://127.0.0.1:4566/?x=1\n");
        e = Assert.Throws<AwsConfigurationException>(() => AwsEndpoint.Resolve("Lambda", null, Options()))!;
        Assert.That((e.FilePath, e.LineNumber), Is.EqualTo((Home.ConfigPath, 2)));
        Assert.That(e.Message, Does.Contain("without a query"));

        var inCode = Assert.Throws<ArgumentException>(() => AwsEndpoint.Resolve("Lambda", new Uri("https://example.com/?x=1"), Options()))!;
        Assert.That(inCode.Message, Does.StartWith("The endpoint 'https://example.com/?x=1' must be an absolute http or https URL without a query"));
    }

    [TestCase("sts", "us-east-1", "https://sts.us-east-1.amazonaws.com/")]
    [TestCase("sts", "cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn/")]
    [TestCase("sts", "us-isob-east-1", "https://sts.us-isob-east-1.sc2s.sgov.gov/")]
    [TestCase("execute-api", "eusc-de-east-1", "https://execute-api.eusc-de-east-1.amazonaws.eu/")]
    public void RegionalEndpointsOfAnyServiceFollowThePartition(string prefix, string region, string expected)
    {
        Assert.That(AwsEndpoint.ForRegion(prefix, region).AbsoluteUri, Is.EqualTo(expected));
    }
}
