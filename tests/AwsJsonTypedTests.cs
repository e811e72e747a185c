using System.Text.Json;
using System.Text.Json.Serialization;

namespace SigV4Lite.Tests;

// Typed awsJson through source-generated metadata (no reflection: what a Native AOT app must use), against the signed
// DynamoDB fake.
public class AwsJsonTypedTests
{
    [Test]
    public async Task ATypedInputIsSentAndATypedOutputRead()
    {
        string? sent = null;
        await using var dynamo = new FakeAwsService("dynamodb", (request, _) =>
        {
            sent = FakeAwsService.Utf8(request);
            return Reply.Json("""{"Item":{"id":{"S":"a"},"n":{"N":"7"}}}""");
        });
        using var client = dynamo.Client(AwsService.DynamoDB);

        var input = new GetItemInput("t", new Dictionary<string, AttributeValue> { ["id"] = new() { S = "a" } });
        var response = await client.SendAsync(AwsRequest.AwsJson("DynamoDB_20120810.GetItem", input, DynamoJson.Default.GetItemInput));
        var output = response.DeserializeBody(DynamoJson.Default.GetItemOutput)!;

        Assert.That(sent, Is.EqualTo("""{"TableName":"t","Key":{"id":{"S":"a"}}}"""));
        Assert.That(output.Item!["n"].N, Is.EqualTo("7"));
        Assert.That(dynamo.SignatureFailures, Is.Empty);
    }

    [Test]
    public void BadInputIsRefusedWithTheExactException()
    {
        var input = new GetItemInput("t", []);
        Assert.That(() => AwsRequest.AwsJson("DynamoDB_20120810.GetItem", input, null!),
            Throws.ArgumentNullException.With.Property("ParamName").EqualTo("typeInfo"));
        Assert.That(() => AwsRequest.AwsJson("GetItem", input, DynamoJson.Default.GetItemInput),
            Throws.ArgumentException.With.Message.Contains("must be <TargetPrefix>.<Operation>"));
        var notJson = new AwsResponse(System.Net.HttpStatusCode.OK, "not json"u8.ToArray());
        Assert.That(() => notJson.DeserializeBody(DynamoJson.Default.GetItemOutput), Throws.InstanceOf<JsonException>());
    }
}

internal sealed record GetItemInput(string TableName, Dictionary<string, AttributeValue> Key);
internal sealed record GetItemOutput(Dictionary<string, AttributeValue>? Item);
internal sealed class AttributeValue
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? S { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? N { get; set; }
}

[JsonSerializable(typeof(GetItemInput))]
[JsonSerializable(typeof(GetItemOutput))]
internal sealed partial class DynamoJson : JsonSerializerContext;
