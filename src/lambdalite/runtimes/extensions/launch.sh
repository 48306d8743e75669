# Starts a function's external extensions, then becomes its runtime (the arguments).
#
# Run by /bin/sh as an execution environment's program when /opt/extensions holds any
# executable. Every extension starts in the background, in the same sandbox, with the
# variables named in _LAMBDALITE_EXT_HIDE (those whose name starts with "_") removed and no
# standard input. When one exits, a line "<marker> <status> <name>" goes to the shared output:
# the platform takes it out of the log and learns that the extension is gone. The runtime
# starts once every extension has registered (the platform answers a long poll then), as the
# extension init phase comes before the runtime's; without curl it starts at once.
#
#   _LAMBDALITE_EXT_DIR    where the extensions are (/opt/extensions as the sandbox sees it)
#   _LAMBDALITE_EXT_MARK   the marker of exit lines, different for every environment
#   _LAMBDALITE_EXT_HIDE   space-separated names extensions must not see
#   _LAMBDALITE_EXT_WAIT   the Runtime API path of that long poll
#
# These are removed before anything else starts.

ext_dir=$_LAMBDALITE_EXT_DIR
ext_mark=$_LAMBDALITE_EXT_MARK
ext_hide=$_LAMBDALITE_EXT_HIDE
ext_wait=${_LAMBDALITE_EXT_WAIT-}
unset _LAMBDALITE_EXT_DIR _LAMBDALITE_EXT_MARK _LAMBDALITE_EXT_HIDE _LAMBDALITE_EXT_WAIT

for ext_path in "$ext_dir"/*; do
    if [ ! -f "$ext_path" ] || [ ! -x "$ext_path" ]; then
        continue
    fi
    (
        for ext_var in $ext_hide; do
            unset "$ext_var"
        done
        "$ext_path" </dev/null
        printf '%s %s %s\n' "$ext_mark" "$?" "${ext_path##*/}"
    ) &
done
if [ -n "$ext_wait" ] && command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null "http://${AWS_LAMBDA_RUNTIME_API}${ext_wait}" || true
fi
unset ext_dir ext_mark ext_hide ext_path ext_wait
exec "$@"
