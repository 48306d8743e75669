"""Which control-plane call serves each operation of the service models.

This table is the whole of the glue between the wire layer and the control plane: the wire
layer parses a request into the operation's input members, the control plane takes and
returns plain dicts shaped like the model. ``docs/compatibility.md`` is generated from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lambdalite.api import eventstream
from lambdalite.api.asgi import RequestContext
from lambdalite.control.plane import ControlPlane

Handler = Callable[[dict[str, Any], RequestContext], Awaitable[dict[str, Any]]]

# operation → (service attribute of ControlPlane, method)
LAMBDA_OPERATIONS: dict[str, tuple[str, str]] = {
    "CreateFunction": ("functions", "create_function"),
    "GetFunction": ("functions", "get_function"),
    "GetFunctionConfiguration": ("functions", "get_function_configuration"),
    "ListFunctions": ("functions", "list_functions"),
    "UpdateFunctionCode": ("functions", "update_function_code"),
    "UpdateFunctionConfiguration": ("functions", "update_function_configuration"),
    "DeleteFunction": ("functions", "delete_function"),
    "PublishVersion": ("versions", "publish_version"),
    "ListVersionsByFunction": ("versions", "list_versions_by_function"),
    "CreateAlias": ("aliases", "create_alias"),
    "GetAlias": ("aliases", "get_alias"),
    "ListAliases": ("aliases", "list_aliases"),
    "UpdateAlias": ("aliases", "update_alias"),
    "DeleteAlias": ("aliases", "delete_alias"),
    "AddPermission": ("permissions", "add_permission"),
    "GetPolicy": ("permissions", "get_policy"),
    "RemovePermission": ("permissions", "remove_permission"),
    "TagResource": ("tags", "tag_resource"),
    "UntagResource": ("tags", "untag_resource"),
    "ListTags": ("tags", "list_tags"),
    "PutFunctionConcurrency": ("concurrency", "put_function_concurrency"),
    "GetFunctionConcurrency": ("concurrency", "get_function_concurrency"),
    "DeleteFunctionConcurrency": ("concurrency", "delete_function_concurrency"),
    "GetAccountSettings": ("concurrency", "get_account_settings"),
    "PutProvisionedConcurrencyConfig": ("concurrency", "put_provisioned_concurrency_config"),
    "GetProvisionedConcurrencyConfig": ("concurrency", "get_provisioned_concurrency_config"),
    "ListProvisionedConcurrencyConfigs": ("concurrency", "list_provisioned_concurrency_configs"),
    "DeleteProvisionedConcurrencyConfig": (
        "concurrency",
        "delete_provisioned_concurrency_config",
    ),
    "PutFunctionEventInvokeConfig": ("event_configs", "put_function_event_invoke_config"),
    "UpdateFunctionEventInvokeConfig": ("event_configs", "update_function_event_invoke_config"),
    "GetFunctionEventInvokeConfig": ("event_configs", "get_function_event_invoke_config"),
    "ListFunctionEventInvokeConfigs": ("event_configs", "list_function_event_invoke_configs"),
    "DeleteFunctionEventInvokeConfig": ("event_configs", "delete_function_event_invoke_config"),
    "GetFunctionRecursionConfig": ("recursion", "get_function_recursion_config"),
    "PutFunctionRecursionConfig": ("recursion", "put_function_recursion_config"),
    "CreateFunctionUrlConfig": ("urls", "create_function_url_config"),
    "GetFunctionUrlConfig": ("urls", "get_function_url_config"),
    "UpdateFunctionUrlConfig": ("urls", "update_function_url_config"),
    "DeleteFunctionUrlConfig": ("urls", "delete_function_url_config"),
    "ListFunctionUrlConfigs": ("urls", "list_function_url_configs"),
    "PublishLayerVersion": ("layers", "publish_layer_version"),
    "GetLayerVersion": ("layers", "get_layer_version"),
    "GetLayerVersionByArn": ("layers", "get_layer_version_by_arn"),
    "ListLayers": ("layers", "list_layers"),
    "ListLayerVersions": ("layers", "list_layer_versions"),
    "DeleteLayerVersion": ("layers", "delete_layer_version"),
    "AddLayerVersionPermission": ("layers", "add_layer_version_permission"),
    "GetLayerVersionPolicy": ("layers", "get_layer_version_policy"),
    "RemoveLayerVersionPermission": ("layers", "remove_layer_version_permission"),
}

LOGS_OPERATIONS: dict[str, tuple[str, str]] = {
    "DescribeLogGroups": ("logs", "describe_log_groups"),
    "DescribeLogStreams": ("logs", "describe_log_streams"),
    "GetLogEvents": ("logs", "get_log_events"),
    "FilterLogEvents": ("logs", "filter_log_events"),
}


def implemented_operations() -> dict[str, set[str]]:
    streaming = {"Invoke", "InvokeWithResponseStream"}
    return {"lambda": {*LAMBDA_OPERATIONS, *streaming}, "logs": set(LOGS_OPERATIONS)}


def _bind(plane: ControlPlane, table: dict[str, tuple[str, str]]) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {}
    for operation, (service, method) in table.items():
        call = getattr(getattr(plane, service), method)

        async def handler(
            params: dict[str, Any], ctx: RequestContext, _call: Any = call
        ) -> dict[str, Any]:
            result: dict[str, Any] = await _call(params)
            return result

        handlers[operation] = handler
    return handlers


def lambda_handlers(plane: ControlPlane) -> dict[str, Handler]:
    handlers = _bind(plane, LAMBDA_OPERATIONS)

    def invoke(params: dict[str, Any], ctx: RequestContext) -> Awaitable[dict[str, Any]]:
        # The service's own coroutine, awaited by the caller: no coroutine of its own.
        trace = ctx.headers.get("x-amzn-trace-id")
        return plane.invocations.invoke(params, ctx.request_id, trace)

    async def invoke_stream(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        trace = ctx.headers.get("x-amzn-trace-id")
        streamed = await plane.streaming.invoke_with_response_stream(params, ctx.request_id, trace)
        if params.get("InvocationType") == "DryRun":
            return {"StatusCode": 204}
        return {
            "StatusCode": 200,
            "ExecutedVersion": streamed.executed_version,
            "ResponseStreamContentType": eventstream.CONTENT_TYPE,
            "EventStream": eventstream.frames(streamed.chunks, streamed.complete),
        }

    handlers["Invoke"] = invoke
    handlers["InvokeWithResponseStream"] = invoke_stream
    return handlers


def logs_handlers(plane: ControlPlane) -> dict[str, Handler]:
    return _bind(plane, LOGS_OPERATIONS)
