using System.Net;

namespace SigV4Lite.Tests;

/// <summary>Function names and qualifiers are checked against Lambda's own patterns before anything is sent.</summary>
public class LambdaFunctionNameTests
{
    private const string Forms = "Give a name (my-function";

    [TestCase("my-function")]
    [TestCase("My_Function-2")]
    [TestCase("us-east-1.replica")] // Lambda@Edge replicas: the pattern takes '.'
    [TestCase("my-function:live")]
    [TestCase("my-function:7")]
    [TestCase("my-function:$LATEST")]
    [TestCase("my-function:$LATEST.PUBLISHED")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:my-function")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:my-function:$LATEST")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:my-function:blue-green")]
    [TestCase("arn:aws-cn:lambda:cn-north-1:123456789012:function:my-function")]
    [TestCase("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:my-function:1")]
    [TestCase("arn:aws-iso-b:lambda:us-isob-east-1:123456789012:function:my-function")]
    [TestCase("123456789012:function:my-function")]
    [TestCase("123456789012:function:my-function:v2")]
    [TestCase("function")] // a name that is also a prefix's word
    [TestCase("function:function")]
    [TestCase("123456789012:fn:f")] // the pattern reads fn as the name and f as its qualifier
    public async Task AcceptsEveryFormOfLambdasPattern(string functionName)
    {
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.OK, "{}"));
        using var client = StubHandler.Client(stub);

        await client.InvokeAsync(new LambdaRequest(functionName, "{}"));

        Assert.That(stub.Uris.Single(), Does.Contain("/2015-03-31/functions/" + LambdaWire.EncodeSegment(functionName) + "/invocations"));
    }

    [Test]
    public async Task AcceptsTheLongestNameQualifierAndARNLambdaTakes()
    {
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.OK, "{}"));
        using var client = StubHandler.Client(stub);
        string name = new('n', 64), qualifier = new('q', 128);
        string arn = "arn:aws-" + new string('p', 15) + ":lambda:us-east-1:123456789012:function:" + name + ":" + qualifier;
        Assert.That(arn, Has.Length.EqualTo(256));

        await client.InvokeAsync(new LambdaRequest(name, "{}"));
        await client.InvokeAsync(new LambdaRequest(name + ":" + qualifier, "{}"));
        await client.InvokeAsync(new LambdaRequest(arn, "{}"));

        Assert.That(stub.Uris, Has.Count.EqualTo(3));
    }

    [TestCase("", "it is empty")]
    [TestCase(" ", "it is blank")]
    [TestCase(".", "its name '.' names no function")]
    [TestCase("..", "its name '..' names no function")]
    [TestCase("123456789012:function:..", "its name '..' names no function")]
    [TestCase("a/b", "'/' (at position 1) is not allowed")]
    [TestCase("a b", "U+0020 (at position 1) is not allowed")]
    [TestCase("a\nb", "U+000A (at position 1) is not allowed")]
    [TestCase("my-function?x=1", "'?' (at position 11) is not allowed")]
    [TestCase("fünf", "'ü' (at position 1) is not allowed")]
    [TestCase("my-function:", "its qualifier '' is not $LATEST, a version or an alias")]
    [TestCase("my-function:v.1", "its qualifier 'v.1' is not $LATEST, a version or an alias")]
    [TestCase("my-function:$LATES", "its qualifier '$LATES' is not $LATEST")]
    [TestCase(":my-function", "its name is empty")]
    [TestCase("arn:aws:lambda:us-east-1:123:function:f", "a 12-digit account id")]
    [TestCase("arn:aws:s3:us-east-1:123456789012:function:f", "arn:<partition>:lambda:")]
    [TestCase("arn:azure:lambda:us-east-1:123456789012:function:f", "arn:<partition>:lambda:")]
    [TestCase("arn:aws:lambda:useast1:123456789012:function:f", "a region such as us-east-1")]
    [TestCase("123456789012:us-east-1:function:f", "in this order")]
    [TestCase("a:b:c", "its parts are not in one of Lambda's forms")]
    [TestCase("arn:aws:lambda:us-east-1:123456789012:function:f:1:2", "more than 8 ':'-separated parts")]
    public void RefusesWhatLambdaWouldNotTakeSayingWhyAndWhatIsTaken(string functionName, string problem)
    {
        var stub = new StubHandler(_ => StubHandler.Json(HttpStatusCode.OK, "{}"));
        using var client = StubHandler.Client(stub);

        var e = Assert.ThrowsAsync<ArgumentException>(() => client.InvokeAsync(new LambdaRequest(functionName, "{}")));

        Assert.That(e!.ParamName, Is.EqualTo("request"));
        Assert.That(e.Message, Does.StartWith($"The function name '{functionName.Replace("\n", "\\u000a")}' is not one Lambda takes: ").And.Contain(problem).And.Contain(Forms).And.Contain("arn:aws:lambda:us-east-1:123456789012:function:my-function"));
        Assert.That(e.Message, Does.Not.Contain("\n"), "control characters are shown as code points");
        Assert.That(stub.Uris, Is.Empty);
    }

    [TestCase(65, "its name is 65 characters long, and a function's name has at most 64")]
    [TestCase(257, "it is 257 characters long, and Lambda takes at most 256")]
    public void RefusesTooLongANameOrARN(int length, string problem)
    {
        string functionName = length <= 64 + 1 ? new string('n', length) : "123456789012:function:" + new string('n', length - 22);
        var e = Assert.Throws<ArgumentException>(() => LambdaWire.Build(new LambdaRequest(functionName, "{}")));
        Assert.That(e!.Message, Does.Contain(problem).And.Contain(Forms));
        Assert.That(e.Message, Has.Length.LessThan(600), "a long name is cut short in the message");
    }

    [TestCase("$LATEST")]
    [TestCase("$LATEST.PUBLISHED")]
    [TestCase("7")]
    [TestCase("live")]
    [TestCase("blue_green-2")]
    public void AcceptsAQualifierOfLambdasPattern(string qualifier)
    {
        var wire = LambdaWire.Build(new LambdaRequest("my-function", "{}") { Qualifier = qualifier });
        Assert.That(wire.Query, Is.EqualTo("Qualifier=" + LambdaWire.EncodeSegment(qualifier)));
    }

    [TestCase("")]
    [TestCase(" ")]
    [TestCase("$latest")]
    [TestCase("v.1")]
    [TestCase("a/b")]
    [TestCase("a b")]
    [TestCase("a$b")]
    public void RefusesAQualifierOutsideLambdasPattern(string qualifier)
    {
        var e = Assert.Throws<ArgumentException>(() => LambdaWire.Build(new LambdaRequest("my-function", "{}") { Qualifier = qualifier }));
        Assert.That(e!.ParamName, Is.EqualTo("request"));
        Assert.That(e.Message, Does.StartWith($"The qualifier '{qualifier}' is not a version or alias").And.Contain("$LATEST, $LATEST.PUBLISHED, a version such as 7, or an alias such as live"));
    }

    [Test]
    public void RefusesTooLongAQualifier()
    {
        Assert.That(() => LambdaWire.Build(new LambdaRequest("my-function", "{}") { Qualifier = new string('q', 128) }), Throws.Nothing);
        var e = Assert.Throws<ArgumentException>(() => LambdaWire.Build(new LambdaRequest("my-function", "{}") { Qualifier = new string('q', 129) }));
        Assert.That(e!.Message, Does.Contain("at most 128"));
    }
}
