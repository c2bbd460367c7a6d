# ruff: noqa  -- the seed article's snippet, verbatim but re-indented; tests substitute host and token
import requests
import pandas as pd
import matplotlib.pyplot as plt

history_url = "https://apis.alltick.co/stock/kline?region=US&code=AAPL&kType=1&limit=50"
auth = {"accept": "application/json", "token": "your_api_token"}
resp = requests.get(history_url, headers=auth)
candles = resp.json().get("data", [])
frame = pd.DataFrame(candles)
# 将毫秒级时间戳转换为标准时区时间
frame["t"] = pd.to_datetime(frame["t"], unit="ms")
plt.figure(figsize=(10, 4))
plt.plot(frame["t"], frame["c"], marker="o", color="b")
plt.title("苹果1分钟趋势追踪")
plt.xlabel("Timeline")
plt.ylabel("Price(USD)")
plt.xticks(rotation=45)
plt.grid(True)
plt.show()
