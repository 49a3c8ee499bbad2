"""Lists one device's events from an emnify-compatible API with the official emnify Python SDK.

Usage: EMNIFY_SDK_API_ENDPOINT_URL=http://127.0.0.1:PORT/api python device_events.py TOKEN ENDPOINT_ID
Prints one JSON object: the event ids and type ids the SDK read.
"""

import json
import sys

from emnify import EMnify


def main() -> None:
    token, endpoint_id = sys.argv[1], int(sys.argv[2])
    client = EMnify(app_token=token)
    events = list(client.devices.get_device_events_list(endpoint_id))
    print(
        json.dumps(
            {
                "ids": [int(e.id) for e in events],
                "types": sorted({int(e.event_type.id) for e in events}),
                "alerts": sum(1 for e in events if e.alert),
            }
        )
    )


if __name__ == "__main__":
    main()
