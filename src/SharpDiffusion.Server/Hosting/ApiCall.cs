using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Hosting;

/// <summary>Runs an endpoint's body and turns every failure into the API's JSON error with the right status; nothing
/// escapes as a stack trace.</summary>
public static class ApiCall
{
    /// <summary>Errors in AUTOMATIC1111's shape.</summary>
    public static async Task A1111(HttpContext context, Func<Task<IResult>> handler) =>
        await (await A1111Result(context, handler)).ExecuteAsync(context);

    /// <summary>Errors in OpenAI's shape.</summary>
    public static async Task OpenAI(HttpContext context, Func<Task<IResult>> handler) =>
        await (await OpenAIResult(context, handler)).ExecuteAsync(context);

    static async Task<IResult> A1111Result(HttpContext context, Func<Task<IResult>> handler)
    {
        try { return await handler(); }
        catch (RequestValidationException e)
        {
            // FastAPI's 422 keeps "detail" as the list of {loc, msg, type}; the A1111 keys are there too.
            var detail = new JsonArray(e.Errors.Select(x => (JsonNode?)x.ToJson()).ToArray());
            return new JsonResult(422, new JsonObject { ["error"] = "RequestValidationError", ["detail"] = detail, ["body"] = "", ["errors"] = e.Message });
        }
        catch (ImageTooLargeException e) { return ApiErrors.A1111(413, "PayloadTooLarge", e.Message); }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            return ApiErrors.A1111(413, "PayloadTooLarge", "The request body is larger than this server accepts (serve --max-body-mb); send smaller images.");
        }
        catch (BadHttpRequestException e) { return ApiErrors.A1111(e.StatusCode, "BadRequest", e.Message); }
        catch (QueueRefusedException e) { return ApiErrors.A1111(e.Status, e.Error, e.Message, retryAfter: e.Status == 503 ? e.RetryAfterSeconds : null); }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested) { return Results.Empty; }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or NotSupportedException or FileNotFoundException)
        {
            return ApiErrors.A1111(422, e.GetType().Name, OneLine(e.Message));
        }
        catch (KeyNotFoundException e) { return ApiErrors.A1111(404, "NotFound", OneLine(e.Message)); }
        // Anything else is this server's fault: still a JSON body (A1111's handler answers 500 {error: type name, ...}),
        // never Kestrel's empty 500.
        catch (Exception e) when (!context.RequestAborted.IsCancellationRequested) { return ApiErrors.A1111(500, e.GetType().Name, OneLine(e.Message)); }
    }

    static async Task<IResult> OpenAIResult(HttpContext context, Func<Task<IResult>> handler)
    {
        try { return await handler(); }
        catch (RequestValidationException e)
        {
            var first = e.Errors[0];
            return ApiErrors.OpenAI(400, e.Message, "invalid_request_error", first.Field == "body" ? null : first.Field);
        }
        catch (ImageTooLargeException e) { return ApiErrors.OpenAI(413, e.Message, "invalid_request_error"); }
        catch (BadHttpRequestException e) { return ApiErrors.OpenAI(e.StatusCode, e.Message, "invalid_request_error"); }
        catch (QueueRefusedException e) { return ApiErrors.OpenAI(e.Status == 503 ? 503 : 409, e.Message, "server_error", retryAfter: e.Status == 503 ? e.RetryAfterSeconds : null); }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested) { return Results.Empty; }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or NotSupportedException or FileNotFoundException)
        {
            return ApiErrors.OpenAI(400, OneLine(e.Message), "invalid_request_error");
        }
        catch (KeyNotFoundException e) { return ApiErrors.OpenAI(404, OneLine(e.Message), "invalid_request_error"); }
        catch (Exception e) when (!context.RequestAborted.IsCancellationRequested) { return ApiErrors.OpenAI(500, $"{OneLine(e.Message)} ({e.GetType().Name})", "server_error"); }
    }

    /// <summary>A finished generation job as its API answers it: the result, or the failure / cancellation as an error.</summary>
    public static IResult A1111Outcome(Job job) => job.State switch
    {
        JobState.Completed => new JsonResult(200, job.Result!),
        JobState.Failed => ApiErrors.A1111(job.ErrorStatus, job.ErrorStatus == 422 ? "GenerationError" : "InternalError", job.Error ?? "failed"),
        _ => ApiErrors.A1111(409, "Cancelled", $"The job {job.Id} was cancelled ({job.Error}); no image was made."),
    };

    static string OneLine(string s) => s.ReplaceLineEndings(" ");
}
