using SigV4Lite;

namespace SigV4Lite.Tests;

/// <summary>The shared config and credentials files: the SDKs' INI rules, merging, and errors that name file and line.</summary>
public class ConfigFileTests : CredentialsTestBase
{
    private AwsConfigFiles Load() => AwsConfigFiles.Load(new AwsConfigContext(Options()));

    [Test]
    public void ConfigFileProfilesNeedThePrefixExceptDefault()
    {
        Home.WriteConfig("""
            [default]
            region = us-east-1
            [profile dev]
            region = eu-west-1
            [plain]
            region = ap-south-1
            """);
        var files = Load();
        Assert.That(files.FindProfile("default", null)!.Get("region")!.Text, Is.EqualTo("us-east-1"));
        Assert.That(files.FindProfile("dev", null)!.Get("region")!.Text, Is.EqualTo("eu-west-1"));
        Assert.That(files.FindProfile("plain", null), Is.Null, "[plain] is not a profile in the config file");

        var e = Assert.Throws<AwsConfigurationException>(() => AwsRegion.Resolve(null, Options(profile: "plain")))!;
        Assert.That(e.ProfileName, Is.EqualTo("plain"));
        Assert.That(e.Message, Does.Contain("'plain' (set in code)").And.Contain(Home.ConfigPath).And.Contain("[profile plain]").And.Contain("line 5"));
        Assert.That(e.Message, Does.Contain("The profiles there are: default, dev."));
    }

    [Test]
    public void ProfileDefaultReplacesPlainDefaultEntirely()
    {
        Home.WriteConfig("""
            [default]
            region = us-east-1
            output = json
            [profile default]
            region = eu-central-1
            """);
        var profile = Load().FindProfile("default", null)!;
        Assert.That(profile.Get("region")!.Text, Is.EqualTo("eu-central-1"));
        Assert.That(profile.Get("output"), Is.Null, "[default] is ignored when [profile default] exists");
    }

    [Test]
    public void CredentialsFileUsesPlainNamesAndWinsOverTheConfigFile()
    {
        Home.WriteConfig("""
            [profile dev]
            aws_access_key_id = AKIDFROMCONFIG
            aws_secret_access_key = secretFromConfig
            region = eu-west-1
            """);
        Home.WriteCredentials("""
            [dev]
            aws_access_key_id = AKIDFROMCREDENTIALS
            aws_secret_access_key = secretFromCredentials
            [profile other]
            aws_access_key_id = AKIDIGNORED
            """);
        var files = Load();
        var dev = files.FindProfile("dev", null)!;
        Assert.That(dev.Get("aws_access_key_id")!.Text, Is.EqualTo("AKIDFROMCREDENTIALS"));
        Assert.That(dev.Get("aws_secret_access_key")!.Text, Is.EqualTo("secretFromCredentials"));
        Assert.That(dev.Get("region")!.Text, Is.EqualTo("eu-west-1"), "values only in the config file stay");
        Assert.That(dev.Where, Is.EqualTo($"{Home.ConfigPath} line 1, {Home.CredentialsPath} line 1"));
        Assert.That(files.FindProfile("other", null), Is.Null);
        Assert.That(files.HintFor("other"), Does.Contain("[other], without 'profile'").And.Contain($"{Home.CredentialsPath} line 4"));
    }

    [Test]
    public void CommentsFollowTheSdkRules()
    {
        Home.WriteConfig("""
            # a comment
            ; another comment
            [profile dev] # comment after a header needs no space;
            region = eu-west-1 # comment
            output = json;not-a-comment
            role_session_name = name ;comment
            external_id = a#b
            """);
        var dev = Load().FindProfile("dev", null)!;
        Assert.That(dev.Get("region")!.Text, Is.EqualTo("eu-west-1"));
        Assert.That(dev.Get("output")!.Text, Is.EqualTo("json;not-a-comment"), "a ; without white space before it is part of the value");
        Assert.That(dev.Get("role_session_name")!.Text, Is.EqualTo("name"));
        Assert.That(dev.Get("external_id")!.Text, Is.EqualTo("a#b"));
    }

    [Test]
    public void IndentedLinesContinueValuesAndHoldNestedSections()
    {
        Home.WriteConfig("\r\n" + """
            [profile dev]
            services = local
            s3 =
              addressing_style = path
              max_concurrent_requests = 10
            [services local]
            lambda =
              endpoint_url = http://127.0.0.1:4566/ # the emulator
            sts =
              endpoint_url = http://127.0.0.1:4567/?a=b
            """.Replace("\n", "\r\n"));
        var files = Load();
        var s3 = files.FindProfile("dev", null)!.Get("s3")!;
        Assert.That(s3.SubValue("addressing_style"), Is.EqualTo("path"));
        Assert.That(s3.SubValue("max_concurrent_requests"), Is.EqualTo("10"));
        Assert.That(s3.Line, Is.EqualTo(4));
        var services = files.FindServices("local")!;
        Assert.That(services.Get("lambda")!.SubValue("endpoint_url"), Is.EqualTo("http://127.0.0.1:4566/"));
        Assert.That(services.Get("sts")!.SubValue("endpoint_url"), Is.EqualTo("http://127.0.0.1:4567/?a=b"), "only the first '=' splits");
    }

    [Test]
    public void RepeatedSectionsMergeAndLaterValuesWin()
    {
        Home.WriteConfig("""
            [profile dev]
            region = us-east-1
            output = json
            [profile dev]
            region = eu-west-1
            """);
        var dev = Load().FindProfile("dev", null)!;
        Assert.That(dev.Get("region")!.Text, Is.EqualTo("eu-west-1"));
        Assert.That(dev.Get("output")!.Text, Is.EqualTo("json"));
    }

    [Test]
    public void InvalidProfileNamesAreIgnoredWithAHint()
    {
        Home.WriteConfig("""
            [profile my profile]
            region = us-east-1
            """);
        var files = Load();
        Assert.That(files.FindProfile("my profile", null), Is.Null);
        Assert.That(files.HintFor("my profile"), Does.Contain("not a valid name"));
    }

    private static readonly object[] MalformedFiles =
    {
        new object[] { "region = us-east-1\n[default]\n", 1, "before any section header" },
        new object[] { "[default]\nregion = us-east-1\n[profile dev\nregion = x\n", 3, "must end with ']'" },
        new object[] { "[default]\naws_secret_access_key wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n", 2, "no '='" },
        new object[] { "[default]\n= wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n", 2, "no name before '='" },
        new object[] { "[default]\n  wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n", 2, "no property comes before it" },
        new object[] { "\n\n  indented = x\n", 3, "before any section header" },
        new object[] { "[services s]\nlambda =\n  endpoint_url http://x\n", 3, "nested property" },
    };

    [TestCaseSource(nameof(MalformedFiles))]
    public void MalformedFilesNameTheFileAndLineButNotTheText(string text, int line, string what)
    {
        string path = Home.WriteConfig(text);
        var e = Assert.Throws<AwsConfigurationException>(() => Load())!;
        Assert.That(e.FilePath, Is.EqualTo(path));
        Assert.That(e.LineNumber, Is.EqualTo(line));
        Assert.That(e.Message, Does.StartWith($"The AWS config file {path} is malformed at line {line}: ").And.Contain(what));
        Assert.That(e.Message, Does.Not.Contain("wJalrXUtnFEMI").And.Not.Contain("http://x"), "the line's text may be a secret");
    }

    [Test]
    public void TheCredentialsFileIsCheckedToo()
    {
        Home.WriteCredentials("[default]\n\tsecret\n");
        var e = Assert.Throws<AwsConfigurationException>(() => Load())!;
        Assert.That(e.FilePath, Is.EqualTo(Home.CredentialsPath));
        Assert.That(e.LineNumber, Is.EqualTo(2));
        // A value may continue on an indented line (the SDKs' rule), so this one is not an error...
        Home.WriteCredentials("[default]\naws_access_key_id = AKID\n\tmore\n");
        Assert.That(Load().FindProfile("default", null)!.Get("aws_access_key_id")!.Text, Is.EqualTo("AKID\nmore"));
    }

    [Test]
    public void FileLocationsComeFromTheEnvironmentAndExpandTheHomeDirectory()
    {
        Home.Write("my-config", "[profile a]\nregion = eu-north-1\n");
        Home.Write("my-credentials", "[a]\naws_access_key_id = AKIDA\n");
        Env["AWS_CONFIG_FILE"] = "~/my-config";
        Env["AWS_SHARED_CREDENTIALS_FILE"] = Path.Combine(Home.Directory, "my-credentials");
        var files = Load();
        Assert.That(files.ConfigPath, Is.EqualTo(Path.Combine(Home.Directory, "my-config")));
        Assert.That(files.FindProfile("a", null)!.Get("region")!.Text, Is.EqualTo("eu-north-1"));
        Assert.That(files.FindProfile("a", null)!.Get("aws_access_key_id")!.Text, Is.EqualTo("AKIDA"));
    }

    [Test]
    public void MissingFilesAreEmptyAndSaidSo()
    {
        var files = Load();
        Assert.That(files.ConfigExists, Is.False);
        Assert.That(files.FindProfile("default", null), Is.Null);
        Assert.That(files.Describe(), Is.EqualTo($"{Home.ConfigPath} (no such file) and {Home.CredentialsPath} (no such file)"));
    }
}
