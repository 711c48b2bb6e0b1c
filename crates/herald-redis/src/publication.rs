//! A hub publication in and out of the node-to-node envelope.
//!
//! The envelope (`herald_protocol::cluster`) has no idea of the hub's types, so this is where a
//! [`Publication`] is lent to it field by field on the way out, and rebuilt on the way in.

use std::borrow::Cow;

use herald_core::publication::Publisher as HubPublisher;
use herald_core::{Origin, Position, Publication, PublicationData, WampFilter};
use herald_protocol::cluster::Envelope;
use herald_protocol::cluster::envelope::{Data, Filter, Publisher};

/// The envelope bytes of `p`, published by `node` as its `seq`-th envelope.
pub(crate) fn encode(node: u64, seq: u64, p: &Publication) -> Vec<u8> {
    let data = match &p.data {
        PublicationData::Str(s) => Data::Str(s),
        PublicationData::Json(raw) => Data::Json(raw),
        PublicationData::Wamp { args, kwargs } => {
            Data::Wamp { args: Cow::Borrowed(args.as_slice()), kwargs: Cow::Borrowed(kwargs) }
        }
    };
    let filter = p.filter.as_deref().map(|f| Filter {
        exclude: Cow::Borrowed(f.exclude.as_slice()),
        eligible: f.eligible.as_deref().map(Cow::Borrowed),
    });
    let publisher =
        p.publisher.as_deref().map(|w| Publisher { session: w.session, authid: &w.authid, authrole: &w.authrole });
    let envelope = Envelope {
        node,
        seq,
        id: p.id,
        wamp: p.origin == Origin::Wamp,
        retain: p.retain,
        channel: p.channel.clone(),
        event: &p.event,
        exclude: p.exclude.as_deref(),
        user_id: p.user_id.as_deref(),
        filter,
        publisher,
        data,
        position: p.position().map(|pos| (&*pos.epoch, pos.serial)),
    };
    envelope.encode()
}

/// The publication an envelope carries, ready for `Hub::deliver` (with its position, when the
/// broker sequenced it).
pub(crate) fn decode(envelope: Envelope<'_>) -> Publication {
    let data = match envelope.data {
        Data::Str(s) => PublicationData::Str(s.into()),
        Data::Json(raw) => PublicationData::Json(raw.to_owned()),
        Data::Wamp { args, kwargs } => PublicationData::Wamp { args: args.into_owned(), kwargs: kwargs.into_owned() },
    };
    let filter = envelope
        .filter
        .map(|f| WampFilter { exclude: f.exclude.into_owned(), eligible: f.eligible.map(Cow::into_owned) });
    let publisher = envelope.publisher.map(|w| HubPublisher {
        session: w.session,
        authid: w.authid.into(),
        authrole: w.authrole.into(),
    });
    let mut publication = Publication::new(envelope.channel, envelope.event, data)
        .excluding(envelope.exclude)
        .with_user_id(envelope.user_id)
        .with_filter(filter)
        .disclosing(publisher)
        .retaining(envelope.retain);
    if envelope.wamp {
        publication = publication.from_wamp();
    }
    publication.id = envelope.id;
    if let Some((epoch, serial)) = envelope.position {
        // A fresh publication: nothing has encoded it yet, so the slot is empty.
        let _ = publication.set_position(Position { epoch: epoch.into(), serial });
    }
    publication
}

#[cfg(test)]
mod tests;
