// One signed AWS Lambda Invoke, answered, then exit: what the Native AOT figures in bench/README.md measure.
//   AotInvoke http://127.0.0.1:9001/     (the emulator: dotnet run --project emulator -- --port 9001)
// Prints the function's answer; exit code 0 when it came back with HTTP 200, 2 for a bad argument.
using SigV4Lite;

if (args.Length != 1 || !Uri.TryCreate(args[0], UriKind.Absolute, out var endpoint))
{
    Console.Error.WriteLine("usage: AotInvoke <Lambda endpoint, such as http://127.0.0.1:9001/>");
    return 2;
}

using var lambda = new LambdaClient(new AwsClientOptions
{
    Region = "us-east-1",
    Endpoint = endpoint,
    Credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
});
LambdaResponse response = await lambda.InvokeAsync(new LambdaRequest("hello-world", """{"hello":1}"""));
Console.WriteLine(response.GetPayloadString());
return response.StatusCode == 200 ? 0 : 1;
