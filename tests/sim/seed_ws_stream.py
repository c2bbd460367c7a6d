# ruff: noqa  -- the seed article's snippet, verbatim but re-indented; tests substitute host and token
import websocket, json, threading, time

STREAM_URL = "wss://apis.alltick.co/stock"
AUTH_TOKEN = "your_api_token"


def handle_stream(ws, msg):
    payload = json.loads(msg)
    if "data" in payload:
        print("接收到流数据:", payload["data"])


def setup_connection(ws):
    # 构造订阅载荷
    sub_payload = {"ac": "subscribe", "params": "AAPL$US,TSLA$US", "types": "tick,quote,depth"}
    ws.send(json.dumps(sub_payload))


def keep_alive(ws):
    while True:
        time.sleep(30)
        ws.send(json.dumps({"ac": "ping", "params": str(int(time.time() * 1000))}))


if __name__ == "__main__":
    app = websocket.WebSocketApp(
        STREAM_URL, header={"token": AUTH_TOKEN}, on_open=setup_connection, on_message=handle_stream
    )
    threading.Thread(target=keep_alive, args=(app,), daemon=True).start()
    app.run_forever()
