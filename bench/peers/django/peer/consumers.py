from channels.generic.websocket import AsyncWebsocketConsumer


class RelayConsumer(AsyncWebsocketConsumer):
    """Joins channel-layer group GROUP and relays every group message verbatim."""

    group_name = None

    async def connect(self):
        self.group_name = self.scope["url_route"]["kwargs"]["group"]
        # Join before accepting: once the client's handshake completes, it is
        # guaranteed to be a member, so a publish right after cannot miss it.
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # Clients only listen; anything they send is ignored.
        pass

    async def relay(self, event):
        # Exactly the published payload, as one text frame, no envelope.
        await self.send(text_data=event["text"])
