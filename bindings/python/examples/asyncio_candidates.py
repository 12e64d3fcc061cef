"""Three candidates in one asyncio event loop take turns leading."""

import asyncio

import ballot


async def candidate(client: ballot.Client, i: int) -> None:
    election = client.election("asyncio-demo")
    lead = await election.campaign_async(f"worker-{i}")
    print(f"worker-{i} leads with term {lead.term}")
    await asyncio.sleep(0.2)
    await election.resign_async()


async def main() -> None:
    client = await ballot.connect_async()
    try:
        await asyncio.gather(*(candidate(client, i) for i in range(3)))
    finally:
        await client.close_async()


asyncio.run(main())
